//! Evaluates typed expressions over whole Arrow arrays at once.
//!
//! A constant stays a one-element scalar instead of being expanded into a
//! column (DataFusion's `ColumnarValue`); Arrow's kernels compare an array
//! with a scalar directly. SQL's null rules come from the kernels themselves:
//! comparisons and arithmetic propagate null, `and`/`or` use Kleene logic,
//! `case` treats a null condition as not taken.

use std::cell::RefCell;
use std::sync::Arc;

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_arith::numeric;
use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Datum, Float64Array, Int64Array, Scalar,
    StringArray, UInt32Array, new_null_array,
};
use arrow_schema::{ArrowError, DataType};
use arrow_select::filter::prep_null_mask_filter;
use rayon::prelude::*;

use crate::dates;
use crate::rules::check::{Arith, Compare, Function, Node, Type, Typed};
use crate::rules::expr::Literal;

/// Why an evaluation failed: integer overflow, mostly. The caller says which
/// definition it was evaluating.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(String);

impl From<ArrowError> for EvalError {
    fn from(e: ArrowError) -> Self {
        EvalError(match e {
            // Arrow's message quotes the operands: per-person values, which
            // must not reach logs.
            ArrowError::ArithmeticOverflow(_) => "integer overflow (a result beyond 2^63): check the data's values, or compute in floats (`1.0 * x`)".to_string(),
            other => other.to_string(),
        })
    }
}

#[derive(Clone)]
enum Value {
    Array(ArrayRef),
    /// A one-element array standing for every row.
    Scalar(ArrayRef),
}

impl Value {
    fn array(&self) -> &ArrayRef {
        match self {
            Value::Array(a) | Value::Scalar(a) => a,
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(self, Value::Scalar(_))
    }

    fn datum(&self) -> Box<dyn Datum + '_> {
        match self {
            Value::Array(a) => Box::new(a),
            Value::Scalar(a) => Box::new(Scalar::new(a)),
        }
    }

    /// The value as an array of `len` rows.
    fn expand(&self, len: usize) -> Result<ArrayRef, EvalError> {
        match self {
            Value::Array(a) => Ok(a.clone()),
            Value::Scalar(a) => {
                let zeros = UInt32Array::from(vec![0u32; len]);
                Ok(arrow_select::take::take(a, &zeros, None)?)
            }
        }
    }
}

/// Rows per chunk when evaluating person-level expressions in parallel.
const CHUNK_ROWS: usize = 64 * 1024;

/// Evaluates `expr` for `len` rows whose columns are `slots`, each
/// subexpression as often as it is written (the scan's filters, once per
/// batch; [`evaluate_parallel`] works repeated ones out once).
pub fn evaluate(expr: &Typed, slots: &[ArrayRef], len: usize) -> Result<ArrayRef, EvalError> {
    evaluate_once(expr, &Repeats::default(), slots, len)
}

/// [`evaluate`] with the expression's [`Repeats`] already found.
fn evaluate_once(
    expr: &Typed,
    repeats: &Repeats,
    slots: &[ArrayRef],
    len: usize,
) -> Result<ArrayRef, EvalError> {
    let env = Env {
        slots,
        len,
        repeats,
        done: RefCell::new(vec![None; repeats.classes]),
    };
    eval(expr, &env)?.expand(len)
}

/// What one evaluation reads: the rows' columns and how many rows there
/// are, and the values of the subexpressions the expression repeats, each
/// kept once worked out.
struct Env<'a> {
    slots: &'a [ArrayRef],
    len: usize,
    repeats: &'a Repeats,
    done: RefCell<Vec<Option<Value>>>,
}

/// The subexpressions an expression repeats, so that each is worked out
/// once per evaluation: a feature written as bands is a `case` testing its
/// score once per boundary (four times for the eFI's categories), and a
/// rule file may repeat a term by hand. Each occurrence is known by its
/// address, with a number shared by equal ones; found once per expression,
/// not once per chunk of rows.
#[derive(Default)]
struct Repeats {
    /// A repeated subexpression's address, and its number.
    at: foldhash::HashMap<usize, usize>,
    /// How many different subexpressions repeat.
    classes: usize,
}

impl Repeats {
    /// Found bottom up in one walk: each node's shape is what it is (its
    /// kind, operator, constant and type) and its operands' shapes, so
    /// equal subexpressions get one shape number, in time linear in the
    /// expression (a long `in` list is thousands of `or`s). Constants
    /// are equal by their bits: -0.0 and 0.0 compare apart in Arrow's
    /// kernels, and so are apart here, as `==` on the tree would not keep
    /// them.
    fn of(expr: &Typed) -> Repeats {
        // Each shape's number, and each node worth keeping (not a column
        // or a constant, which cost nothing to read again) with its shape.
        let mut numbers: foldhash::HashMap<(String, Vec<usize>), usize> = Default::default();
        let mut kept: Vec<(&Typed, usize)> = Vec::new();
        // Operands before the node, without recursion (a chain written
        // out is as deep as it is long): `todo` holds nodes to visit and
        // nodes whose operands are done; `done` the shapes of finished
        // nodes, a node's operands' on top, in order, when it finishes.
        let mut todo: Vec<(&Typed, bool)> = vec![(expr, false)];
        let mut done: Vec<usize> = Vec::new();
        while let Some((e, operands_done)) = todo.pop() {
            let mut operands = Vec::new();
            e.each_child(&mut |c| operands.push(c));
            if !operands_done {
                todo.push((e, true));
                todo.extend(operands.into_iter().rev().map(|c| (c, false)));
                continue;
            }
            let operands = done.split_off(done.len() - operands.len());
            let what = match &e.node {
                Node::Literal(Literal::Float(x)) => format!("float {:x}", x.to_bits()),
                Node::Literal(l) => format!("{l:?}"),
                Node::Slot(i) => format!("slot {i}"),
                Node::ToFloat(_) => "to float".into(),
                Node::Not(_) => "not".into(),
                Node::Neg(_) => "neg".into(),
                Node::And(..) => "and".into(),
                Node::Or(..) => "or".into(),
                Node::Compare(op, ..) => format!("compare {op:?}"),
                Node::Arith(op, ..) => format!("arith {op:?}"),
                Node::IsNull(_, negated) => format!("is null {negated}"),
                Node::Case(_, otherwise) => format!("case {}", otherwise.is_some()),
                Node::Call(f, _) => format!("call {f:?}"),
            };
            let next = numbers.len();
            let number = *numbers
                .entry((format!("{what} {:?}", e.ty), operands))
                .or_insert(next);
            if !matches!(e.node, Node::Slot(_) | Node::Literal(_)) {
                kept.push((e, number));
            }
            done.push(number);
        }
        let mut seen = vec![0usize; numbers.len()];
        for &(_, number) in &kept {
            seen[number] += 1;
        }
        // Repeated shapes numbered from 0, in the order first met.
        let mut class: foldhash::HashMap<usize, usize> = Default::default();
        let mut at: foldhash::HashMap<usize, usize> = Default::default();
        for &(e, number) in &kept {
            if seen[number] > 1 {
                let next = class.len();
                let c = *class.entry(number).or_insert(next);
                at.insert(std::ptr::from_ref(e) as usize, c);
            }
        }
        Repeats {
            classes: class.len(),
            at,
        }
    }

    /// The number of `e`, if it is a repeated subexpression.
    fn class(&self, e: &Typed) -> Option<usize> {
        if self.at.is_empty() {
            return None;
        }
        self.at.get(&(std::ptr::from_ref(e) as usize)).copied()
    }
}

/// [`evaluate`] over large inputs, in row chunks on the rayon pool. The
/// result is the same as one call over all rows.
pub fn evaluate_parallel(
    expr: &Typed,
    slots: &[ArrayRef],
    len: usize,
) -> Result<ArrayRef, EvalError> {
    evaluate_chunked(
        expr,
        slots,
        len,
        TEXT_WAVE_PER_THREAD * rayon::current_num_threads(),
    )
}

/// Chunks of a text expression worked out at once, per thread of the pool
/// ([`evaluate_chunked`]).
const TEXT_WAVE_PER_THREAD: usize = 4;

/// [`evaluate_parallel`], a text expression's chunks worked out `wave` at
/// a time: each wave's chunks are copied onto the end of the whole
/// ([`TextJoin`]) and dropped before the next wave is worked out. Joined
/// only once all were made, every chunk had been held beside the whole: at
/// 5M persons the eFI's deficit list (27 bytes a person) raised the
/// default model's resident memory from 1.56 to 1.80 GB that way, its peak.
/// Other types take 1 to 8 bytes a person, and their chunks are joined at
/// the end, in parallel.
fn evaluate_chunked(
    expr: &Typed,
    slots: &[ArrayRef],
    len: usize,
    wave: usize,
) -> Result<ArrayRef, EvalError> {
    let repeats = Repeats::of(expr);
    if len <= CHUNK_ROWS {
        return evaluate_once(expr, &repeats, slots, len);
    }
    // Only the slots the expression reads are sliced: a slice counts its
    // nulls, and a model has over a hundred slots.
    let mut read = vec![false; slots.len()];
    expr.each_slot(&mut |s| read[s] = true);
    let chunk = |start: usize| {
        let n = CHUNK_ROWS.min(len - start);
        let sliced: Vec<ArrayRef> = slots
            .iter()
            .zip(&read)
            .map(|(a, &read)| if read { a.slice(start, n) } else { a.clone() })
            .collect();
        evaluate_once(expr, &repeats, &sliced, n)
    };
    let starts: Vec<usize> = (0..len).step_by(CHUNK_ROWS).collect();
    if expr.ty.data_type() != DataType::Utf8 {
        let chunks: Vec<ArrayRef> = starts
            .into_par_iter()
            .map(chunk)
            .collect::<Result<_, _>>()?;
        return Ok(joined(&chunks)?);
    }
    let mut whole = Some(TextJoin::new(len));
    // Where a wave cannot be joined as text (a chunk of another type, or
    // the whole past 32-bit offsets), the rest is joined as `concat`
    // joins it, which says why it fails.
    let mut rest: Vec<ArrayRef> = Vec::new();
    for starts in starts.chunks(wave.max(1)) {
        let chunks: Vec<ArrayRef> = starts
            .par_iter()
            .map(|&start| chunk(start))
            .collect::<Result<_, _>>()?;
        let added = whole.as_mut().and_then(|text| text.extend(&chunks));
        if added.is_none() {
            // The rows joined so far, if any, then the rest in order.
            rest.extend(whole.take().filter(|t| t.rows() > 0).map(TextJoin::finish));
            rest.extend(chunks);
        }
    }
    match whole {
        Some(text) => Ok(text.finish()),
        None => Ok(joined(&rest)?),
    }
}

/// The chunks one after another: what Arrow's `concat` makes, with the
/// values of numbers, dates and text copied in parallel (one thread's copy
/// of each derived feature's whole column was about 1% of the default
/// model's CPU at 5M persons for numbers and dates, and for text about a
/// third of the derive stage's wall-clock time, on one core while the other
/// waited).
fn joined(chunks: &[ArrayRef]) -> Result<ArrayRef, ArrowError> {
    use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type};
    let ty = chunks.first().map(|c| c.data_type());
    // Chunks of one expression have one type; `concat` says so if not.
    let one_type = chunks.iter().all(|c| Some(c.data_type()) == ty);
    match ty.filter(|_| one_type) {
        Some(DataType::Int64) => Ok(joined_primitive::<Int64Type>(chunks)),
        Some(DataType::Float64) => Ok(joined_primitive::<Float64Type>(chunks)),
        Some(DataType::Date32) => Ok(joined_primitive::<Date32Type>(chunks)),
        Some(DataType::Int32) => Ok(joined_primitive::<Int32Type>(chunks)),
        Some(DataType::Utf8) if let Some(text) = joined_text(chunks) => Ok(text),
        _ => {
            let refs: Vec<&dyn Array> = chunks.iter().map(|a| a.as_ref()).collect();
            arrow_select::concat::concat(&refs)
        }
    }
}

/// [`joined`] of chunks of one primitive type.
fn joined_primitive<T: arrow_array::ArrowPrimitiveType>(chunks: &[ArrayRef]) -> ArrayRef {
    let len: usize = chunks.iter().map(|c| c.len()).sum();
    let mut values = vec![T::Native::default(); len];
    // Each chunk's place in the whole.
    let mut places: Vec<&mut [T::Native]> = Vec::with_capacity(chunks.len());
    let mut rest = values.as_mut_slice();
    for chunk in chunks {
        let (place, after) = rest.split_at_mut(chunk.len());
        places.push(place);
        rest = after;
    }
    places
        .into_par_iter()
        .zip(chunks)
        .for_each(|(place, chunk)| place.copy_from_slice(chunk.as_primitive::<T>().values()));
    let nulls = joined_nulls(chunks, len);
    Arc::new(arrow_array::PrimitiveArray::<T>::new(values.into(), nulls))
}

/// The validity of `len` rows of chunks joined: none where no chunk has a
/// null, as `concat` makes it.
fn joined_nulls(chunks: &[ArrayRef], len: usize) -> Option<arrow_buffer::NullBuffer> {
    chunks.iter().any(|c| c.null_count() > 0).then(|| {
        let mut valid = arrow_buffer::BooleanBufferBuilder::new(len);
        for chunk in chunks {
            match chunk.logical_nulls() {
                Some(nulls) => valid.append_buffer(nulls.inner()),
                None => valid.append_n(chunk.len(), true),
            }
        }
        arrow_buffer::NullBuffer::new(valid.finish())
    })
}

/// [`joined`] of text chunks. None where the whole would pass 32-bit
/// offsets, which `concat` refuses with its own error.
fn joined_text(chunks: &[ArrayRef]) -> Option<ArrayRef> {
    let len = chunks.iter().map(|c| c.len()).sum();
    let mut text = TextJoin::new(len);
    text.extend(chunks)?;
    Some(text.finish())
}

/// Text chunks joined one after another, as `concat` joins them: each
/// chunk's offsets moved to its place and its bytes copied, the chunks of
/// one [`TextJoin::extend`] in parallel.
struct TextJoin {
    offsets: Vec<i32>,
    values: Vec<u8>,
    valid: arrow_buffer::BooleanBufferBuilder,
    /// Whether a chunk had a null: else the whole has no null buffer.
    nulls: bool,
}

impl TextJoin {
    /// For `len` rows in all.
    fn new(len: usize) -> TextJoin {
        let mut offsets = Vec::with_capacity(len + 1);
        offsets.push(0);
        TextJoin {
            offsets,
            values: Vec::new(),
            valid: arrow_buffer::BooleanBufferBuilder::new(len),
            nulls: false,
        }
    }

    /// Adds `chunks` at the end; None, adding nothing, where one is not
    /// text or the whole would pass 32-bit offsets.
    fn extend(&mut self, chunks: &[ArrayRef]) -> Option<()> {
        let texts: Vec<&StringArray> = chunks
            .iter()
            .map(|c| c.as_string_opt::<i32>())
            .collect::<Option<_>>()?;
        // Each chunk's bytes: from its first offset to its last (a slice's
        // offsets need not start at 0).
        let spans: Vec<(usize, usize)> = texts
            .iter()
            .map(|t| {
                let offsets = t.value_offsets();
                (offsets[0] as usize, offsets[t.len()] as usize)
            })
            .collect();
        let base = self.values.len();
        let bytes = base + spans.iter().map(|(from, to)| to - from).sum::<usize>();
        i32::try_from(bytes).ok()?;
        let first = self.offsets.len();
        let rows: usize = texts.iter().map(|t| t.len()).sum();
        self.offsets.resize(first + rows, 0);
        self.values.resize(bytes, 0);
        // Each chunk's place: its offsets after the first, its bytes, and
        // how far its offsets move.
        let mut places: Vec<(&mut [i32], &mut [u8], i32)> = Vec::with_capacity(texts.len());
        let (mut rest_offsets, mut rest_values) =
            (&mut self.offsets[first..], &mut self.values[base..]);
        let mut at = base;
        for (t, (from, to)) in texts.iter().zip(&spans) {
            let (o, o_after) = rest_offsets.split_at_mut(t.len());
            let (v, v_after) = rest_values.split_at_mut(to - from);
            // Within i32: `bytes` is.
            places.push((o, v, at as i32 - *from as i32));
            (rest_offsets, rest_values) = (o_after, v_after);
            at += to - from;
        }
        places
            .into_par_iter()
            .zip(texts.par_iter().zip(&spans))
            .for_each(|((o, v, shift), (t, &(from, to)))| {
                for (place, &end) in o.iter_mut().zip(&t.value_offsets()[1..]) {
                    *place = end + shift;
                }
                v.copy_from_slice(&t.value_data()[from..to]);
            });
        for t in &texts {
            match t.logical_nulls() {
                Some(nulls) => {
                    self.nulls |= nulls.null_count() > 0;
                    self.valid.append_buffer(nulls.inner());
                }
                None => self.valid.append_n(t.len(), true),
            }
        }
        Some(())
    }

    /// The rows joined so far.
    fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    fn finish(mut self) -> ArrayRef {
        let nulls = self
            .nulls
            .then(|| arrow_buffer::NullBuffer::new(self.valid.finish()));
        // SAFETY: the offsets rise from 0 to the length of `values`, and
        // each string's bytes are a whole string of a valid UTF-8 array.
        let text = unsafe {
            StringArray::new_unchecked(
                arrow_buffer::OffsetBuffer::new_unchecked(self.offsets.into()),
                self.values.into(),
                nulls,
            )
        };
        Arc::new(text)
    }
}

/// Where a boolean array is true; null counts as false (SQL `where`).
pub fn is_true(mask: &BooleanArray) -> BooleanArray {
    if mask.null_count() == 0 {
        mask.clone()
    } else {
        prep_null_mask_filter(mask)
    }
}

fn literal(lit: &Literal, ty: Type) -> ArrayRef {
    match lit {
        Literal::Int(v) => Arc::new(Int64Array::from(vec![*v])),
        Literal::Float(v) => Arc::new(Float64Array::from(vec![*v])),
        Literal::Str(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Literal::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Literal::Date(d) => Arc::new(Date32Array::from(vec![dates::to_day(*d)])),
        Literal::Null => new_null_array(&ty.data_type(), 1),
    }
}

/// Applies a kernel that takes arrays (not scalars) to one or more values.
fn on_arrays(
    values: &[&Value],
    len: usize,
    f: impl FnOnce(&[ArrayRef]) -> Result<ArrayRef, EvalError>,
) -> Result<Value, EvalError> {
    if values.iter().all(|v| v.is_scalar()) {
        let arrays: Vec<ArrayRef> = values.iter().map(|v| v.array().clone()).collect();
        return Ok(Value::Scalar(f(&arrays)?));
    }
    let arrays = values
        .iter()
        .map(|v| v.expand(len))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(f(&arrays)?))
}

/// Applies a kernel that takes `Datum`s (arrays or scalars) to two values.
fn on_datums(
    a: &Value,
    b: &Value,
    f: impl FnOnce(&dyn Datum, &dyn Datum) -> Result<ArrayRef, ArrowError>,
) -> Result<Value, EvalError> {
    let out = f(a.datum().as_ref(), b.datum().as_ref())?;
    Ok(if a.is_scalar() && b.is_scalar() {
        Value::Scalar(out)
    } else {
        Value::Array(out)
    })
}

fn boolean(a: &ArrayRef) -> &BooleanArray {
    a.as_boolean()
}

fn eval(expr: &Typed, env: &Env) -> Result<Value, EvalError> {
    let class = env.repeats.class(expr);
    if let Some(done) = class.and_then(|c| env.done.borrow()[c].clone()) {
        return Ok(done);
    }
    let value = eval_node(expr, env)?;
    if let Some(c) = class {
        env.done.borrow_mut()[c] = Some(value.clone());
    }
    Ok(value)
}

/// [`eval`] of `expr` itself, its operands through [`eval`]. Inlined, so
/// that the recursion over a deep expression takes no more stack than
/// before repeats were kept (an `in` list is a balanced tree of `or`s,
/// but a chain written out, `a or b or c ...`, is as deep as it is long, up
/// to the parser's 500 levels).
#[inline(always)]
fn eval_node(expr: &Typed, env: &Env) -> Result<Value, EvalError> {
    let (slots, len) = (env.slots, env.len);
    let sub = |e: &Typed| eval(e, env);
    Ok(match &expr.node {
        // A feature the rules type as null (`expr = "null"`) is held as
        // Arrow's typeless nulls; where the expression has given it a type
        // (`round(x)`, `x + 1`), the operator takes that type's array, so
        // it reads as the typed nulls a bare `null` there would be.
        Node::Slot(i) if slots[*i].data_type() == &DataType::Null && expr.ty != Type::Null => {
            Value::Array(new_null_array(&expr.ty.data_type(), slots[*i].len()))
        }
        // Counts a run holds in 32 bits read as whole numbers.
        Node::Slot(i) => Value::Array(crate::engine::aggregate::widened(slots[*i].clone())),
        Node::Literal(lit) => Value::Scalar(literal(lit, expr.ty)),
        Node::ToFloat(inner) => {
            let v = sub(inner)?;
            on_arrays(&[&v], len, |a| {
                Ok(arrow_cast::cast(&a[0], &DataType::Float64)?)
            })?
        }
        Node::Not(inner) => {
            let v = sub(inner)?;
            on_arrays(&[&v], len, |a| Ok(Arc::new(not(boolean(&a[0]))?)))?
        }
        Node::Neg(inner) => {
            let v = sub(inner)?;
            on_arrays(&[&v], len, |a| Ok(numeric::neg(&a[0])?))?
        }
        Node::And(l, r) | Node::Or(l, r) => {
            let (a, b) = (sub(l)?, sub(r)?);
            let and = matches!(expr.node, Node::And(..));
            on_arrays(&[&a, &b], len, |x| {
                let (p, q) = (boolean(&x[0]), boolean(&x[1]));
                Ok(Arc::new(if and {
                    and_kleene(p, q)?
                } else {
                    or_kleene(p, q)?
                }))
            })?
        }
        Node::Compare(op, l, r) => {
            let (a, b) = (sub(l)?, sub(r)?);
            let kernel = match op {
                Compare::Eq => arrow_ord::cmp::eq,
                Compare::NotEq => arrow_ord::cmp::neq,
                Compare::Lt => arrow_ord::cmp::lt,
                Compare::LtEq => arrow_ord::cmp::lt_eq,
                Compare::Gt => arrow_ord::cmp::gt,
                Compare::GtEq => arrow_ord::cmp::gt_eq,
            };
            on_datums(&a, &b, |x, y| Ok(Arc::new(kernel(x, y)?)))?
        }
        Node::Arith(op, l, r) => arith(*op, l, r, expr.ty, env)?,
        Node::IsNull(inner, negated) => {
            let v = sub(inner)?;
            on_arrays(&[&v], len, |a| {
                Ok(Arc::new(if *negated {
                    is_not_null(&a[0])?
                } else {
                    is_null(&a[0])?
                }))
            })?
        }
        Node::Case(whens, otherwise) => {
            let mut result = match otherwise {
                Some(o) => sub(o)?,
                None => Value::Scalar(new_null_array(&expr.ty.data_type(), 1)),
            };
            let whens = whens
                .iter()
                .map(|(cond, value)| Ok((sub(cond)?, sub(value)?)))
                .collect::<Result<Vec<_>, EvalError>>()?;
            if let Some(picked) = case_text(&whens, &result, len) {
                return Ok(picked);
            }
            for (c, v) in whens.iter().rev() {
                result = choose(c, v, &result, len)?;
            }
            result
        }
        Node::Call(function, args) => {
            let values = args.iter().map(sub).collect::<Result<Vec<_>, _>>()?;
            call(*function, values, len)?
        }
    })
}

/// `mask ? a : b` row by row, a null mask choosing `b`.
fn choose(mask: &Value, a: &Value, b: &Value, len: usize) -> Result<Value, EvalError> {
    let all_scalar = mask.is_scalar() && a.is_scalar() && b.is_scalar();
    if let Value::Scalar(m) = mask {
        // One answer for every row: `a` or `b` whole.
        let pick = if is_true(boolean(m)).value(0) { a } else { b };
        return Ok(match (all_scalar, pick) {
            (true, _) | (false, Value::Array(_)) => pick.clone(),
            (false, Value::Scalar(_)) => Value::Array(pick.expand(len)?),
        });
    }
    let rows = if all_scalar { 1 } else { len };
    let mask = is_true(boolean(&mask.expand(rows)?));
    if let Some(out) = choose_primitive(&mask, a, b) {
        return Ok(Value::Array(out));
    }
    let out = arrow_select::zip::zip(&mask, a.datum().as_ref(), b.datum().as_ref())?;
    Ok(if all_scalar {
        Value::Scalar(out)
    } else {
        Value::Array(out)
    })
}

/// `case` on text in one pass: each row's branch (the first condition
/// true, else `otherwise`) worked out from the conditions' bits, then each
/// row's text copied once. Choosing `when` by `when` (as for other types)
/// copies every row's text once per `when`, and where a branch is a column
/// Arrow's kernel copies a run of rows at a time, and rules' masks have
/// short runs: bands (`efi_category`, `hfrs_band`) and a column in a
/// `then` took about 5% of the CPU of an evaluation that way.
///
/// `None`, to choose `when` by `when`, where that is as fast or this path
/// cannot be taken: one `when` picking between two constants (Arrow
/// writes those by repeating the text, faster than copying row by row); a
/// branch that is not text; no condition that varies by row; 255 `when`s
/// or more; more than 2 GiB of text.
fn case_text(whens: &[(Value, Value)], otherwise: &Value, len: usize) -> Option<Value> {
    let branches: Vec<(&StringArray, bool)> = whens
        .iter()
        .map(|(_, v)| v)
        .chain([otherwise])
        .map(|v| Some((v.array().as_string_opt::<i32>()?, v.is_scalar())))
        .collect::<Option<_>>()?;
    let constants = branches.iter().all(|(_, scalar)| *scalar);
    if whens.iter().all(|(c, _)| c.is_scalar())
        || (whens.len() == 1 && constants)
        || whens.len() >= usize::from(u8::MAX)
    {
        return None;
    }
    // Each row's branch: conditions applied last to first, so the first
    // true one is written last.
    let mut which = vec![whens.len() as u8; len];
    for (k, (cond, _)) in whens.iter().enumerate().rev() {
        let mask = boolean(cond.array());
        match cond {
            Value::Scalar(_) if mask.is_valid(0) && mask.value(0) => which.fill(k as u8),
            Value::Scalar(_) => {}
            Value::Array(_) => {
                for row in is_true(mask).values().set_indices() {
                    which[row] = k as u8;
                }
            }
        }
    }
    // Each row's text (nothing where null), then where it is null.
    let text = |i: usize, k: u8| -> (&StringArray, usize) {
        let (text, scalar) = branches[usize::from(k)];
        (text, if scalar { 0 } else { i })
    };
    let mut offsets: Vec<i32> = Vec::with_capacity(len + 1);
    offsets.push(0);
    let mut values: Vec<u8> = Vec::with_capacity(len * 8);
    for (i, &k) in which.iter().enumerate() {
        let (t, at) = text(i, k);
        if t.is_valid(at) {
            values.extend_from_slice(t.value(at).as_bytes());
        }
        offsets.push(i32::try_from(values.len()).ok()?);
    }
    let nulls = branches
        .iter()
        .any(|(t, _)| t.null_count() > 0)
        .then(|| {
            arrow_buffer::NullBuffer::from(arrow_buffer::BooleanBuffer::collect_bool(len, |i| {
                let (t, at) = text(i, which[i]);
                t.is_valid(at)
            }))
        })
        .filter(|n| n.null_count() > 0);
    let offsets = arrow_buffer::OffsetBuffer::new(offsets.into());
    Some(Value::Array(Arc::new(StringArray::new(
        offsets,
        values.into(),
        nulls,
    ))))
}

/// `choose` for number, date and true/false columns, without Arrow's
/// general kernel (which copies a run of rows at a time, and rules' masks
/// have short runs): values picked a word of the mask (64 rows) at a
/// time ([`pick_by_words`]), and validity worked out a word at a time as `mask & a valid | !mask & b
/// valid`. `mask` has no nulls.
fn choose_primitive(mask: &BooleanArray, a: &Value, b: &Value) -> Option<ArrayRef> {
    use arrow_array::types::{Date32Type, Float64Type, Int64Type};
    use arrow_buffer::{BooleanBuffer, NullBuffer};
    let ty = a.array().data_type();
    let taken = matches!(
        ty,
        DataType::Int64 | DataType::Float64 | DataType::Date32 | DataType::Boolean
    );
    if !taken || ty != b.array().data_type() {
        return None;
    }
    let len = mask.len();
    let m = mask.values();
    // A branch's validity for every row; `None` where all are valid.
    let validity = |v: &Value| -> Option<BooleanBuffer> {
        let array = v.array();
        if v.is_scalar() {
            array.is_null(0).then(|| BooleanBuffer::new_unset(len))
        } else {
            array.logical_nulls().map(|n| n.inner().clone())
        }
    };
    let nulls = match (validity(a), validity(b)) {
        (None, None) => None,
        (va, vb) => {
            let all = || BooleanBuffer::new_set(len);
            let (va, vb) = (va.unwrap_or_else(all), vb.unwrap_or_else(all));
            Some(NullBuffer::new(&(m & &va) | &(&!m & &vb))).filter(|n| n.null_count() > 0)
        }
    };
    fn pick<T: arrow_array::ArrowPrimitiveType>(
        m: &BooleanBuffer,
        a: &Value,
        b: &Value,
        nulls: Option<NullBuffer>,
    ) -> ArrayRef {
        fn side<T: arrow_array::ArrowPrimitiveType>(v: &Value) -> Side<'_, T::Native> {
            let values = v.array().as_primitive::<T>().values();
            if v.is_scalar() {
                Side::All(values[0])
            } else {
                Side::Each(&values[..])
            }
        }
        let values = pick_by_words(m, side::<T>(a), side::<T>(b));
        Arc::new(arrow_array::PrimitiveArray::<T>::new(values.into(), nulls))
    }
    Some(match ty {
        DataType::Int64 => pick::<Int64Type>(m, a, b, nulls),
        DataType::Float64 => pick::<Float64Type>(m, a, b, nulls),
        DataType::Date32 => pick::<Date32Type>(m, a, b, nulls),
        DataType::Boolean => {
            let bits = |v: &Value| {
                let bits = v.array().as_boolean().values();
                match v.is_scalar() {
                    false => bits.clone(),
                    true if bits.value(0) => BooleanBuffer::new_set(len),
                    true => BooleanBuffer::new_unset(len),
                }
            };
            let values = &(m & &bits(a)) | &(&!m & &bits(b));
            Arc::new(BooleanArray::new(values, nulls))
        }
        _ => unreachable!("the types taken are checked above"),
    })
}

/// One side of a choice: a value for each row, or one for every row.
#[derive(Clone, Copy)]
enum Side<'a, T> {
    Each(&'a [T]),
    All(T),
}

/// Each row's value from `x` where its bit of `m` is set, else from `y`,
/// a word of the mask (64 rows) at a time: the rows of a word are picked
/// in a loop with no test of the mask's length and one of the values'
/// bounds per word, which the compiler does several at once (reading the
/// mask a bit at a time, each pick was a call of the bit iterator).
fn pick_by_words<T: Copy + Default>(
    m: &arrow_buffer::BooleanBuffer,
    x: Side<T>,
    y: Side<T>,
) -> Vec<T> {
    let mut out = vec![T::default(); m.len()];
    let words = m.bit_chunks().iter_padded();
    for (chunk, (word, out)) in words.zip(out.chunks_mut(64)).enumerate() {
        let rows = chunk * 64..chunk * 64 + out.len();
        let bit = |i: usize| word >> i & 1 != 0;
        match (x, y) {
            (Side::Each(x), Side::Each(y)) => {
                let pairs = x[rows.clone()].iter().zip(&y[rows]);
                for (i, (o, (&x, &y))) in out.iter_mut().zip(pairs).enumerate() {
                    *o = if bit(i) { x } else { y };
                }
            }
            (Side::Each(x), Side::All(y)) => {
                for (i, (o, &x)) in out.iter_mut().zip(&x[rows]).enumerate() {
                    *o = if bit(i) { x } else { y };
                }
            }
            (Side::All(x), Side::Each(y)) => {
                for (i, (o, &y)) in out.iter_mut().zip(&y[rows]).enumerate() {
                    *o = if bit(i) { x } else { y };
                }
            }
            (Side::All(x), Side::All(y)) => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = if bit(i) { x } else { y };
                }
            }
        }
    }
    out
}

fn arith(op: Arith, l: &Typed, r: &Typed, ty: Type, env: &Env) -> Result<Value, EvalError> {
    let len = env.len;
    let (a, b) = (eval(l, env)?, eval(r, env)?);
    // Dates move in whole days: compute on day numbers, then turn back.
    if l.ty == Type::Date {
        let days = |v: &Value| -> Result<Value, EvalError> {
            let cast = |x: &ArrayRef| -> Result<ArrayRef, EvalError> {
                let as_i32 = arrow_cast::cast(x, &DataType::Int32)?;
                Ok(arrow_cast::cast(&as_i32, &DataType::Int64)?)
            };
            Ok(match v {
                Value::Array(x) => Value::Array(cast(x)?),
                Value::Scalar(x) => Value::Scalar(cast(x)?),
            })
        };
        let a = days(&a)?;
        let b = if r.ty == Type::Date { days(&b)? } else { b };
        let kernel = if op == Arith::Add {
            numeric::add
        } else {
            numeric::sub
        };
        let out = on_datums(&a, &b, kernel)?;
        if ty == Type::Int {
            return Ok(out);
        }
        let to_date = |x: &ArrayRef| -> Result<ArrayRef, EvalError> {
            let as_i32 = arrow_cast::cast(x, &DataType::Int32)?;
            Ok(arrow_cast::cast(&as_i32, &DataType::Date32)?)
        };
        return Ok(match out {
            Value::Array(x) => Value::Array(to_date(&x)?),
            Value::Scalar(x) => Value::Scalar(to_date(&x)?),
        });
    }
    match op {
        Arith::Add => on_datums(&a, &b, numeric::add),
        Arith::Sub => on_datums(&a, &b, numeric::sub),
        Arith::Mul => on_datums(&a, &b, numeric::mul),
        Arith::Div => {
            // SQL (Spark, non-ANSI) gives null for division by zero.
            let quotient = on_datums(&a, &b, numeric::div)?;
            // Arrow compares floats by bits, so test both zeros.
            let zeros = Value::Scalar(Arc::new(Float64Array::from(vec![0.0])));
            let negative_zeros = Value::Scalar(Arc::new(Float64Array::from(vec![-0.0])));
            let equal = |x: &dyn Datum, y: &dyn Datum| -> Result<ArrayRef, ArrowError> {
                Ok(Arc::new(arrow_ord::cmp::eq(x, y)?))
            };
            let is_zero = on_datums(&b, &zeros, equal)?;
            let is_negative_zero = on_datums(&b, &negative_zeros, equal)?;
            let divisor_zero = on_arrays(&[&is_zero, &is_negative_zero], len, |x| {
                Ok(Arc::new(or_kleene(boolean(&x[0]), boolean(&x[1]))?))
            })?;
            on_arrays(&[&quotient, &divisor_zero], len, |x| {
                Ok(arrow_select::nullif::nullif(
                    &x[0],
                    &is_true(boolean(&x[1])),
                )?)
            })
        }
    }
}

/// SQL's `ROUND` on a float, as Spark does it: on the value's shortest
/// decimal form, so `round(0.285, 2)` is 0.29 (binary arithmetic would give
/// 0.28), halves away from zero. Values beyond the decimal type's range
/// (about 7.9e28) already have fewer digits than asked for and are returned
/// as they are.
pub(crate) fn round_half_up(v: f64, digits: i32) -> f64 {
    use rust_decimal::prelude::{Decimal, RoundingStrategy, ToPrimitive};
    use std::str::FromStr;
    if !v.is_finite() {
        return v;
    }
    // Fast path: away from a tie, rounding the binary value gives the same
    // whole number as rounding its decimal form, and one correctly rounded
    // division by the power of ten gives the nearest double to the result,
    // as the decimal path does. Only near-ties need the decimal form.
    if (0..=15).contains(&digits) {
        let scale = 10f64.powi(digits);
        let scaled = v * scale;
        if scaled.abs() < 1e15 && (scaled.fract().abs() - 0.5).abs() > 1e-6 {
            return scaled.round() / scale;
        }
    }
    let Ok(d) = Decimal::from_str(&v.to_string()) else {
        return v;
    };
    let away = RoundingStrategy::MidpointAwayFromZero;
    let rounded = if digits >= 0 {
        d.round_dp_with_strategy(digits as u32, away)
    } else {
        let p = Decimal::from(10i64.pow(digits.unsigned_abs()));
        (d / p).round_dp_with_strategy(0, away) * p
    };
    rounded.to_f64().unwrap_or(v)
}

/// Joins `arrays[1..]` row by row with `arrays[0]` between them, skipping
/// nulls; a null separator gives null (as Spark).
fn concat_ws(arrays: &[ArrayRef]) -> ArrayRef {
    let texts: Vec<_> = arrays.iter().map(|a| a.as_string::<i32>()).collect();
    let (separator, parts) = texts.split_first().expect("the checker requires arguments");
    let mut out = arrow_array::builder::StringBuilder::new();
    let mut row = String::new();
    for i in 0..separator.len() {
        if separator.is_null(i) {
            out.append_null();
            continue;
        }
        row.clear();
        for (n, part) in parts.iter().filter(|p| p.is_valid(i)).enumerate() {
            if n > 0 {
                row.push_str(separator.value(i));
            }
            row.push_str(part.value(i));
        }
        out.append_value(&row);
    }
    Arc::new(out.finish())
}

fn call(function: Function, values: Vec<Value>, len: usize) -> Result<Value, EvalError> {
    if function == Function::ConcatWs {
        let refs: Vec<&Value> = values.iter().collect();
        return on_arrays(&refs, len, |a| Ok(concat_ws(a)));
    }
    let mut values = values.into_iter();
    let first = values.next().expect("the checker requires arguments");
    match function {
        Function::Coalesce => values.try_fold(first, |acc, next| {
            let present = on_arrays(&[&acc], len, |a| Ok(Arc::new(is_not_null(&a[0])?)))?;
            choose(&present, &acc, &next, len)
        }),
        Function::Least | Function::Greatest => values.try_fold(first, |acc, next| {
            // Nulls are skipped (Spark's least/greatest): take `next` where
            // the running value is null, or where next beats it.
            let better = on_datums(&next, &acc, |x, y| {
                Ok(Arc::new(if function == Function::Least {
                    arrow_ord::cmp::lt(x, y)?
                } else {
                    arrow_ord::cmp::gt(x, y)?
                }))
            })?;
            let take = on_arrays(&[&acc, &better], len, |a| {
                Ok(Arc::new(or_kleene(
                    &is_null(&a[0])?,
                    &is_true(boolean(&a[1])),
                )?))
            })?;
            choose(&take, &next, &acc, len)
        }),
        Function::Exp | Function::Ln | Function::Round(_) => on_arrays(&[&first], len, |a| {
            let x = a[0].as_primitive::<arrow_array::types::Float64Type>();
            let out: Float64Array = match function {
                Function::Exp => x.unary(f64::exp),
                Function::Ln => x.unary_opt(|v| (v > 0.0).then(|| v.ln())),
                Function::Round(digits) => x.unary(|v| round_half_up(v, digits)),
                _ => unreachable!("matched above"),
            };
            Ok(Arc::new(out))
        }),
        Function::Abs => {
            let zero: ArrayRef = match first.array().data_type() {
                DataType::Float64 => Arc::new(Float64Array::from(vec![0.0])),
                _ => Arc::new(Int64Array::from(vec![0i64])),
            };
            let zero = Value::Scalar(zero);
            let negative = on_datums(&first, &zero, |x, y| {
                Ok(Arc::new(arrow_ord::cmp::lt(x, y)?))
            })?;
            let negated = on_arrays(&[&first], len, |a| Ok(numeric::neg(&a[0])?))?;
            choose(&negative, &negated, &first, len)
        }
        Function::ConcatWs => unreachable!("handled above: it takes text, not numbers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::check::{Binding, check};
    use crate::rules::expr::parse;

    /// Over several words of the mask (64 rows each, and a part word),
    /// starting mid-word, the fast `choose` gives what the general kernel
    /// gives, with each branch an array or a scalar.
    #[test]
    fn choosing_by_words_agrees_with_the_general_kernel_across_words() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
        let rows = 200;
        let mut column = || -> ArrayRef {
            let values: Vec<Option<i64>> = (0..rows + 7)
                .map(|_| rng.random_bool(0.9).then(|| rng.random_range(-50..50)))
                .collect();
            Arc::new(Int64Array::from(values).slice(7, rows))
        };
        let (x, y) = (column(), column());
        // A mask with no nulls (as `choose` passes) sliced mid-word, so
        // that each of its words is made of two of the buffer's.
        let bits: Vec<bool> = (0..rows + 3).map(|i| i % 3 == 0 || i % 5 == 1).collect();
        let mask = BooleanArray::from(bits).slice(3, rows);
        assert_eq!(mask.values().offset(), 3);
        let scalar: ArrayRef = Arc::new(Int64Array::from(vec![Some(99)]));
        let null: ArrayRef = Arc::new(Int64Array::from(vec![None::<i64>]));
        let branches = [
            Value::Array(x),
            Value::Array(y),
            Value::Scalar(scalar),
            Value::Scalar(null),
        ];
        for a in &branches {
            for b in &branches {
                let general =
                    arrow_select::zip::zip(&mask, a.datum().as_ref(), b.datum().as_ref()).unwrap();
                let fast = choose_primitive(&mask, a, b).expect("a type the fast path takes");
                assert_eq!(fast.as_ref(), general.as_ref());
            }
        }
    }

    /// The fast `choose` gives what the general kernel gives, for every
    /// type it takes, with array and scalar branches, nulls in the mask and
    /// in either branch.
    #[test]
    fn choosing_row_by_row_agrees_with_the_general_kernel() {
        let mask = Value::Array(Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
            Some(false),
        ])));
        let columns: Vec<(ArrayRef, ArrayRef)> = vec![
            (
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    None,
                    Some(3),
                    None,
                    Some(5),
                ])),
                Arc::new(Int64Array::from(vec![Some(-1)])),
            ),
            (
                Arc::new(Float64Array::from(vec![
                    None,
                    Some(2.5),
                    Some(3.5),
                    Some(4.5),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![None::<f64>])),
            ),
            (
                Arc::new(Date32Array::from(vec![
                    Some(1),
                    Some(2),
                    None,
                    Some(4),
                    Some(5),
                ])),
                Arc::new(Date32Array::from(vec![Some(9)])),
            ),
            (
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    None,
                    Some(false),
                    Some(true),
                    None,
                ])),
                Arc::new(BooleanArray::from(vec![Some(false)])),
            ),
            // No nulls in either branch.
            (
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
                Arc::new(Int64Array::from(vec![0])),
            ),
            (
                Arc::new(BooleanArray::from(vec![true, false, false, true, true])),
                Arc::new(BooleanArray::from(vec![None])),
            ),
        ];
        for (array, scalar) in columns {
            let branches = [
                Value::Array(array.clone()),
                Value::Scalar(scalar.clone()),
                Value::Array(
                    arrow_select::take::take(&array, &UInt32Array::from(vec![4, 3, 2, 1, 0]), None)
                        .unwrap(),
                ),
                // A slice starting mid-byte, as the parallel evaluation's
                // chunks are.
                Value::Array(
                    arrow_select::concat::concat(&[
                        scalar.as_ref(),
                        array.as_ref(),
                        array.as_ref(),
                    ])
                    .unwrap()
                    .slice(3, 5),
                ),
            ];
            for a in &branches {
                for b in &branches {
                    let m = is_true(boolean(&mask.expand(5).unwrap()));
                    // The mask sliced mid-byte too.
                    let padded = arrow_select::concat::concat(&[&m, &m]).unwrap();
                    let sliced = padded.as_boolean().slice(5, 5);
                    let general =
                        arrow_select::zip::zip(&m, a.datum().as_ref(), b.datum().as_ref()).unwrap();
                    let fast = choose_primitive(&m, a, b).expect("a type the fast path takes");
                    assert_eq!(fast.as_ref(), general.as_ref(), "{:?}", array.data_type());
                    let fast = choose_primitive(&sliced, a, b).expect("as above");
                    assert_eq!(
                        fast.as_ref(),
                        general.as_ref(),
                        "sliced {:?}",
                        array.data_type()
                    );
                    let Value::Array(chosen) = choose(&mask, a, b, 5).unwrap() else {
                        panic!("an array mask gives an array");
                    };
                    assert_eq!(chosen.as_ref(), general.as_ref());
                }
                // A scalar mask picks one branch whole.
                let yes = Value::Scalar(Arc::new(BooleanArray::from(vec![Some(true)])));
                let null = Value::Scalar(Arc::new(BooleanArray::from(vec![None])));
                let other = &branches[2];
                let picked = choose(&yes, a, other, 5).unwrap().expand(5).unwrap();
                assert_eq!(picked.as_ref(), a.expand(5).unwrap().as_ref());
                let picked = choose(&null, a, other, 5).unwrap().expand(5).unwrap();
                assert_eq!(picked.as_ref(), other.expand(5).unwrap().as_ref());
            }
        }
    }

    /// Columns: n (Int: 1, null, 7), x (Float: 0.5, 2.0, null),
    /// s (Str: 'F', 'M', null), d (Date: 2025-01-01, null, 2025-03-01).
    fn slots() -> Vec<ArrayRef> {
        vec![
            Arc::new(Int64Array::from(vec![Some(1), None, Some(7)])),
            Arc::new(Float64Array::from(vec![Some(0.5), Some(2.0), None])),
            Arc::new(StringArray::from(vec![Some("F"), Some("M"), None])),
            Arc::new(Date32Array::from(vec![Some(20089), None, Some(20148)])),
            Arc::new(arrow_array::NullArray::new(3)),
        ]
    }

    fn run(text: &str) -> ArrayRef {
        let env = |name: &str| match name {
            "n" => Some(Binding::Column(0, Type::Int)),
            "x" => Some(Binding::Column(1, Type::Float)),
            "s" => Some(Binding::Column(2, Type::Str)),
            "d" => Some(Binding::Column(3, Type::Date)),
            "z" => Some(Binding::Column(4, Type::Null)),
            "five" => Some(Binding::Constant(Literal::Int(5))),
            _ => None,
        };
        let typed = check(&parse(text).unwrap(), &env, &|n| n.to_string()).unwrap();
        // As features are derived: repeated subexpressions worked out once.
        let once = evaluate_parallel(&typed, &slots(), 3).unwrap();
        assert_eq!(&once, &evaluate(&typed, &slots(), 3).unwrap(), "{text}");
        once
    }

    fn bools(text: &str) -> Vec<Option<bool>> {
        run(text).as_boolean().iter().collect()
    }

    fn ints(text: &str) -> Vec<Option<i64>> {
        run(text)
            .as_primitive::<arrow_array::types::Int64Type>()
            .iter()
            .collect()
    }

    fn floats(text: &str) -> Vec<Option<f64>> {
        run(text)
            .as_primitive::<arrow_array::types::Float64Type>()
            .iter()
            .collect()
    }

    /// A column the rules type as null (a feature `expr = "null"`), held as
    /// Arrow's typeless nulls, reads in every use as a bare `null` written
    /// there: `round(z)` panicked and `z + 1` failed in Arrow's kernels.
    #[test]
    fn a_column_typed_as_null_reads_as_a_bare_null() {
        let uses = [
            "{} + 1",
            "{} / 2",
            "-{}",
            "abs({})",
            "round({})",
            "round({}, 2)",
            "ln({})",
            "exp({})",
            "{} = 1",
            "{} < x",
            "{} in (1, 2)",
            "{} between 1 and 2",
            "not {}",
            "{} and true",
            "{} or true",
            "{} is null",
            "{} is not null",
            "case when {} then 1 end",
            "case when n > 1 then {} else 0 end",
            "case when n > 1 then {} else 'a' end",
            "coalesce({}, n)",
            "coalesce({}, {})",
            "least({}, x)",
            "greatest({}, d)",
            "concat_ws(',', {}, s)",
            "{} = s",
        ];
        for use_ in uses {
            let (column, bare) = (use_.replace("{}", "z"), use_.replace("{}", "null"));
            let got = run(&column);
            assert_eq!(got.data_type(), run(&bare).data_type(), "{column}");
            assert_eq!(&got, &run(&bare), "{column}");
        }
        // Where nothing types it, it stays as it is held.
        assert_eq!(run("z").data_type(), &DataType::Null);
    }

    #[test]
    fn comparisons_propagate_null() {
        assert_eq!(bools("n >= five"), vec![Some(false), None, Some(true)]);
        assert_eq!(bools("s = 'F'"), vec![Some(true), Some(false), None]);
        assert_eq!(bools("n < x"), vec![Some(false), None, None]);
    }

    #[test]
    fn kleene_logic() {
        // null and false = false; null or true = true.
        assert_eq!(
            bools("n > 0 and s = 'F'"),
            vec![Some(true), Some(false), None]
        );
        assert_eq!(
            bools("n > 5 or s = 'M'"),
            vec![Some(false), Some(true), Some(true)]
        );
        assert_eq!(bools("not (n > 5)"), vec![Some(true), None, Some(false)]);
        assert_eq!(bools("s in ('M', null)"), vec![None, Some(true), None]);
        assert_eq!(bools("n not in (1)"), vec![Some(false), None, Some(true)]);
        assert_eq!(
            bools("n between 1 and 5"),
            vec![Some(true), None, Some(false)]
        );
        assert_eq!(
            bools("n is null"),
            vec![Some(false), Some(true), Some(false)]
        );
    }

    #[test]
    fn arithmetic_and_division() {
        assert_eq!(ints("n * 2 + 1"), vec![Some(3), None, Some(15)]);
        assert_eq!(floats("n / 2"), vec![Some(0.5), None, Some(3.5)]);
        assert_eq!(floats("n / (n - 1)"), vec![None, None, Some(7.0 / 6.0)]);
        assert_eq!(floats("x / (0 * -1.0)"), vec![None, None, None]);
        assert_eq!(ints("null + null"), vec![None, None, None]);
        assert_eq!(bools("null = null"), vec![None, None, None]);
        assert_eq!(ints("-null"), vec![None, None, None]);
        assert_eq!(floats("n + x"), vec![Some(1.5), None, None]);
        assert_eq!(ints("-n"), vec![Some(-1), None, Some(-7)]);
        assert_eq!(ints("abs(n - 5)"), vec![Some(4), None, Some(2)]);
    }

    #[test]
    fn logistic_models_and_rounding() {
        let p = floats("1 / (1 + exp(-(-2.0 + 0.5 * n)))");
        assert!((p[0].unwrap() - 1.0 / (1.0 + (1.5f64).exp())).abs() < 1e-12);
        assert_eq!(p[1], None);
        assert_eq!(
            floats("round(x * 3 + 0.25, 1)"),
            vec![Some(1.8), Some(6.3), None]
        );
        assert_eq!(floats("round(2.5)"), vec![Some(3.0); 3]);
        assert_eq!(floats("round(-2.5)"), vec![Some(-3.0); 3]);
        assert_eq!(floats("round(0.285, 2)"), vec![Some(0.29); 3]);
        assert_eq!(floats("round(1.005, 2)"), vec![Some(1.01); 3]);
        assert_eq!(floats("round(1250, -2)"), vec![Some(1300.0); 3]);
        assert_eq!(
            floats("round(100000000000000000000000000000000.0, 15)"),
            vec![Some(1e32); 3]
        );
        assert_eq!(floats("ln(n - 1)"), vec![None, None, Some(6f64.ln())]);
    }

    #[test]
    fn dates_move_by_days() {
        assert_eq!(ints("d - date '2025-01-01'"), vec![Some(0), None, Some(59)]);
        assert_eq!(
            bools("d + 59 = date '2025-03-01'"),
            vec![Some(true), None, Some(false)]
        );
    }

    #[test]
    fn rounding_takes_the_fast_path_only_where_it_agrees_with_decimals() {
        use rust_decimal::prelude::{Decimal, RoundingStrategy, ToPrimitive};
        use std::str::FromStr;
        let exact = |v: f64, d: u32| {
            Decimal::from_str(&v.to_string())
                .unwrap()
                .round_dp_with_strategy(d, RoundingStrategy::MidpointAwayFromZero)
                .to_f64()
                .unwrap()
        };
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Values of every size, and many exact ties such as 0.285.
            let v = match i % 3 {
                0 => (x % 100_000) as f64 / 1000.0,
                1 => (x as f64 / u64::MAX as f64 - 0.5) * 1e6,
                _ => (x % 1000) as f64 / 36.0,
            };
            for d in [0, 1, 2, 3] {
                assert_eq!(round_half_up(v, d as i32), exact(v, d), "round({v}, {d})");
            }
        }
        assert_eq!(round_half_up(0.285, 2), 0.29);
        assert_eq!(round_half_up(-2.5, 0), -3.0);
    }

    #[test]
    fn concat_ws_skips_nulls() {
        let v = run(
            "concat_ws(', ', case when n > 0 then 'some' end, '', case when n > 5 then 'many' end, null)",
        );
        let v: Vec<_> = v.as_string::<i32>().iter().collect();
        assert_eq!(v, vec![Some("some, "), Some(""), Some("some, , many")]);
        let v = run("concat_ws(null, 'a', 'b')");
        assert_eq!(
            v.as_string::<i32>().iter().collect::<Vec<_>>(),
            vec![None; 3]
        );
    }

    /// Text `case` in one pass gives what choosing `when` by `when` gives:
    /// 200 random cases of one to four `when`s over 150 rows (more than two
    /// 64-bit words), with conditions that are arrays (with nulls or
    /// without, sliced mid-byte; a null's value bit may be set, as Arrow's
    /// comparisons leave it) or constants (true, false, null with its value
    /// bit set), and branches that are texts, nulls, or columns with nulls.
    #[test]
    fn text_case_in_one_pass_agrees_with_choosing_when_by_when() {
        use arrow_buffer::{BooleanBuffer, NullBuffer};
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let len = 150;
        let mut in_one_pass = 0;
        // A null whose value bit is set: taken only if nulls are ignored.
        let set_null = |bits: Vec<bool>, valid: Vec<bool>| {
            BooleanArray::new(BooleanBuffer::from(bits), Some(NullBuffer::from(valid)))
        };
        for _ in 0..200 {
            let cond = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus| match rng.random_range(0..7) {
                0 => Value::Scalar(Arc::new(BooleanArray::from(vec![Some(true)]))),
                1 => Value::Scalar(Arc::new(set_null(vec![true], vec![false]))),
                2 => Value::Scalar(Arc::new(BooleanArray::from(vec![Some(false)]))),
                k => {
                    let skip = rng.random_range(0..8);
                    let bits = (0..len + skip)
                        .map(|_| rng.random_range(0..3) == 0)
                        .collect();
                    // Without nulls, or with a null in about one row in four.
                    let valid = (0..len + skip)
                        .map(|_| k == 3 || rng.random_range(0..4) > 0)
                        .collect();
                    Value::Array(Arc::new(set_null(bits, valid).slice(skip, len)))
                }
            };
            let text = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus| match rng.random_range(0..4) {
                0 => Value::Scalar(new_null_array(&DataType::Utf8, 1)),
                1 => Value::Scalar(Arc::new(StringArray::from(vec!["label"]))),
                _ => {
                    let skip = rng.random_range(0..8);
                    let texts: StringArray = (0..len + skip)
                        .map(|i| (rng.random_range(0..5) > 0).then(|| "x".repeat(i % 4)))
                        .collect();
                    Value::Array(Arc::new(texts.slice(skip, len)))
                }
            };
            let whens: Vec<(Value, Value)> = (0..rng.random_range(1..5))
                .map(|_| (cond(&mut rng), text(&mut rng)))
                .collect();
            let otherwise = text(&mut rng);
            let mut expected = otherwise.clone();
            for (c, v) in whens.iter().rev() {
                expected = choose(c, v, &expected, len).unwrap();
            }
            let expected = expected.expand(len).unwrap();
            match case_text(&whens, &otherwise, len) {
                Some(one_pass) => {
                    assert_eq!(one_pass.expand(len).unwrap().as_ref(), expected.as_ref());
                    in_one_pass += 1;
                }
                None => assert!(
                    whens.iter().all(|(c, _)| c.is_scalar())
                        || (whens.len() == 1 && whens[0].1.is_scalar() && otherwise.is_scalar())
                ),
            }
        }
        // Most cases take the one-pass path (the rest are checked above).
        assert!(in_one_pass > 100, "{in_one_pass} of 200");
    }

    /// The longest `in` list the parser takes (2,498 values) evaluates on a
    /// thread's usual 2 MB stack in a debug build, as a tree about as deep
    /// as the logarithm of its length: as a chain of `or`s, a level of
    /// recursion each, 2,000 values overflowed it.
    #[test]
    fn the_longest_in_list_evaluates() {
        fn depth(t: &Typed) -> usize {
            let mut deepest = 0;
            t.each_child(&mut |c| deepest = deepest.max(depth(c)));
            deepest + 1
        }
        let others: Vec<String> = (8..2505).map(|i| i.to_string()).collect();
        let list = format!("({}, 7)", others.join(", "));
        assert_eq!(
            bools(&format!("n in {list}")),
            vec![Some(false), None, Some(true)]
        );
        assert_eq!(
            bools(&format!("n not in {list}")),
            vec![Some(true), None, Some(false)]
        );
        // 2,498 comparisons, each two levels deep, under 12 levels of `or`.
        let env = |name: &str| (name == "n").then_some(Binding::Column(0, Type::Int));
        let text = format!("n in {list}");
        let typed = check(&parse(&text).unwrap(), &env, &|n| n.to_string()).unwrap();
        assert_eq!(depth(&typed), 14);
    }

    #[test]
    fn case_coalesce_least() {
        let v = run("case when n > 5 then 'high' when n > 0 then 'low' else 'none' end");
        let v: Vec<_> = v.as_string::<i32>().iter().collect();
        assert_eq!(v, vec![Some("low"), Some("none"), Some("high")]);
        assert_eq!(ints("coalesce(n, 0)"), vec![Some(1), Some(0), Some(7)]);
        assert_eq!(
            ints("case when n > 5 then 1 end"),
            vec![None, None, Some(1)]
        );
        assert_eq!(floats("least(n, x)"), vec![Some(0.5), Some(2.0), Some(7.0)]);
        assert_eq!(
            floats("greatest(n, x, 1.5)"),
            vec![Some(1.5), Some(2.0), Some(7.0)]
        );
    }

    /// A repeated subexpression is worked out once and read again where
    /// it repeats; different ones, even of the same shape, stay apart.
    #[test]
    fn repeated_subexpressions_are_worked_out_once() {
        let typed = |text: &str| {
            let env = |name: &str| match name {
                "n" => Some(Binding::Column(0, Type::Int)),
                "x" => Some(Binding::Column(1, Type::Float)),
                _ => None,
            };
            check(&parse(text).unwrap(), &env, &|n| n.to_string()).unwrap()
        };
        // As bands are read: the score tested at each boundary.
        let banded = "case when (n * 2) is null then null when (n * 2) < 3 then 'low' \
                      when (n * 2) <= 10 then 'mid' else 'high' end";
        let repeats = Repeats::of(&typed(banded));
        assert_eq!(repeats.classes, 1, "n * 2");
        assert_eq!(repeats.at.len(), 3);
        let v = run(banded);
        let v: Vec<_> = v.as_string::<i32>().iter().collect();
        assert_eq!(v, vec![Some("low"), None, Some("high")]);
        // Two repeated terms, and terms alike but for an operand.
        let text = "(n + 1) * (x + 1.0) + (n + 1) * (x + 1.0) + (n + 2) + (x + 2.0)";
        let repeats = Repeats::of(&typed(text));
        // n + 1, its widening to a float, x + 1.0, and their product.
        assert_eq!(repeats.classes, 4);
        assert!(
            Repeats::of(&typed("(n + 2) + (x + 2.0) + (n + 1)"))
                .at
                .is_empty()
        );
        // Alike but for a zero's sign: apart, as Arrow compares them.
        assert!(Repeats::of(&typed("x * -0.0 < x * 0.0")).at.is_empty());
        assert_eq!(
            bools("x * -0.0 < x * 0.0"),
            vec![Some(true), Some(true), None]
        );
        // A long `in` list, thousands of `or`s, found in one walk; its
        // repeated left side (n) is a column, read again at no cost.
        let list: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
        let long = format!("n in ({})", list.join(", "));
        assert!(Repeats::of(&typed(&long)).at.is_empty());
        let squared = format!("(n * n) in ({})", list.join(", "));
        assert_eq!(Repeats::of(&typed(&squared)).classes, 1);
        assert_eq!(Repeats::of(&typed(&squared)).at.len(), 2000);
        let twice = |n: f64, x: f64| 2.0 * (n + 1.0) * (x + 1.0) + (n + 2.0) + (x + 2.0);
        assert_eq!(floats(text), vec![Some(twice(1.0, 0.5)), None, None]);
        // In chunks on the pool, as one call.
        let rows = 3 * CHUNK_ROWS + 17;
        let ns: Vec<i64> = (0..rows as i64).map(|i| i % 13 - 4).collect();
        let slots: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ns.clone()))];
        let parallel = evaluate_parallel(&typed(banded), &slots, rows).unwrap();
        let expected: StringArray = ns
            .iter()
            .map(|n| {
                Some(if n * 2 < 3 {
                    "low"
                } else if n * 2 <= 10 {
                    "mid"
                } else {
                    "high"
                })
            })
            .collect();
        assert_eq!(parallel.as_string::<i32>(), &expected);
    }

    #[test]
    fn constants_stay_scalar_and_expand_at_the_end() {
        assert_eq!(ints("five + 1"), vec![Some(6); 3]);
        assert_eq!(bools("five > 1 and true"), vec![Some(true); 3]);
    }

    #[test]
    fn parallel_equals_serial() {
        let n = 200_000;
        let a: ArrayRef = Arc::new(Int64Array::from_iter(
            (0..n as i64).map(|i| (i % 7 != 0).then_some(i)),
        ));
        let typed = check(
            &parse("case when a > 1000 then a * 3 - 1 else -a end").unwrap(),
            &|_| Some(Binding::Column(0, Type::Int)),
            &|n| n.to_string(),
        )
        .unwrap();
        let serial = evaluate(&typed, std::slice::from_ref(&a), n).unwrap();
        let parallel = evaluate_parallel(&typed, &[a], n).unwrap();
        assert_eq!(serial.to_data(), parallel.to_data());
    }

    /// A text expression worked out a wave of chunks at a time is the
    /// array one evaluation over all rows makes, buffer for buffer: waves
    /// of one, two and many chunks, a last part wave, chunks with nulls
    /// and chunks without, and an expression with none at all.
    #[test]
    fn text_joined_a_wave_at_a_time_is_text_worked_out_whole() {
        // Six chunks and a part: nulls only in the third and the last.
        let n = CHUNK_ROWS * 6 + 1_000;
        let a: ArrayRef = Arc::new(Int64Array::from_iter((0..n as i64).map(|i| {
            let nulls = (2 * CHUNK_ROWS as i64..3 * CHUNK_ROWS as i64).contains(&i)
                || i >= 6 * CHUNK_ROWS as i64;
            (!nulls || i % 5 != 0).then_some(i)
        })));
        for (text, any_null) in [
            // Null where `a` is.
            (
                "case when a > 250000 then 'é' when a > -1 then 'other words' end",
                true,
            ),
            (
                "case when a is null then 'none' when a > 300000 then '' else 'even' end",
                false,
            ),
        ] {
            let typed = check(
                &parse(text).unwrap(),
                &|_| Some(Binding::Column(0, Type::Int)),
                &|n| n.to_string(),
            )
            .unwrap();
            let whole = evaluate(&typed, std::slice::from_ref(&a), n).unwrap();
            assert_eq!(whole.null_count() > 0, any_null, "{text}");
            for wave in [1, 2, 3, 100] {
                let waves = evaluate_chunked(&typed, std::slice::from_ref(&a), n, wave).unwrap();
                assert_eq!(waves.nulls(), whole.nulls(), "{text}, waves of {wave}");
                let (got, expected) = (waves.to_data(), whole.to_data());
                assert_eq!(got, expected, "{text}, waves of {wave}");
                for (g, e) in got.buffers().iter().zip(expected.buffers()) {
                    assert_eq!(g.as_slice(), e.as_slice(), "{text}, waves of {wave}");
                }
            }
        }
    }

    /// Chunks that are slices of a text column (offsets not from 0), with
    /// a null buffer but no null in range, all null, joined a wave at a
    /// time; and chunks that are not text joined as `concat` joins them.
    #[test]
    fn text_slices_and_chunks_of_another_type_join_as_they_did() {
        let n = CHUNK_ROWS * 4 + 10;
        // Nulls only in the second chunk, which is all null; the others
        // share its null buffer with no null in their range.
        let words: ArrayRef = Arc::new(StringArray::from_iter((0..n + 3).map(|i| {
            let null = (CHUNK_ROWS + 3..2 * CHUNK_ROWS + 3).contains(&i);
            (!null).then(|| ["", "a", "éé", "longer words"][i % 4])
        })));
        let sliced = words.slice(3, n);
        let bare = |ty: Type| {
            check(
                &parse("s").unwrap(),
                &|_| Some(Binding::Column(0, ty)),
                &|n| n.to_string(),
            )
            .unwrap()
        };
        let whole = evaluate(&bare(Type::Str), std::slice::from_ref(&sliced), n).unwrap();
        for wave in [1, 2, 100] {
            let got =
                evaluate_chunked(&bare(Type::Str), std::slice::from_ref(&sliced), n, wave).unwrap();
            assert_eq!(got.nulls(), whole.nulls(), "waves of {wave}");
            assert_eq!(got.to_data(), whole.to_data(), "waves of {wave}");
        }
        // Text by its type, large text in fact (an attribute read as
        // Arrow's 64-bit-offset text): joined by `concat`, as before the
        // waves.
        let large: ArrayRef = Arc::new(arrow_array::LargeStringArray::from_iter(
            (0..n).map(|i| (i % 7 != 0).then(|| ["a", "éé", ""][i % 3])),
        ));
        let got = evaluate_chunked(&bare(Type::Str), std::slice::from_ref(&large), n, 2).unwrap();
        assert_eq!(got.data_type(), &DataType::LargeUtf8);
        assert_eq!(got.as_ref(), large.as_ref());
    }

    /// Chunks joined in parallel make the array Arrow's `concat` makes,
    /// byte for byte (the values under nulls too, and a null buffer only
    /// where concat has one), for every type joined in parallel and two
    /// that are not: chunks with and without nulls, with a null buffer but
    /// no null in range, all null, empty and sliced; and chunks of two
    /// types are refused, as concat refuses them.
    #[test]
    fn chunks_join_as_arrow_joins_them() {
        fn check_joined(chunks: Vec<ArrayRef>) {
            let refs: Vec<&dyn Array> = chunks.iter().map(|a| a.as_ref()).collect();
            match (joined(&chunks), arrow_select::concat::concat(&refs)) {
                (Ok(got), Ok(expected)) => {
                    // (`ArrayData` drops a null buffer with no nulls.)
                    assert_eq!(got.nulls(), expected.nulls(), "{:?}", got.data_type());
                    let (got, expected) = (got.to_data(), expected.to_data());
                    assert_eq!(got, expected);
                    assert_eq!(got.data_type(), expected.data_type());
                    assert_eq!(got.offset(), expected.offset());
                    for (g, e) in got.buffers().iter().zip(expected.buffers()) {
                        assert_eq!(g.as_slice(), e.as_slice(), "{:?}", got.data_type());
                    }
                }
                (Err(_), Err(_)) => {}
                (got, expected) => panic!("joined {got:?}, concat {expected:?}"),
            }
        }
        let ints = |from: i64, to: i64, nulls: bool| -> ArrayRef {
            Arc::new(Int64Array::from_iter(
                (from..to).map(|i| (!nulls || i % 3 != 0).then_some(i)),
            ))
        };
        check_joined(vec![
            ints(0, 10, true),
            ints(10, 10, false),
            ints(10, 25, false),
        ]);
        check_joined(vec![ints(0, 10, false), ints(10, 20, false)]);
        check_joined(vec![ints(0, 20, true).slice(5, 10), ints(0, 7, true)]);
        // A null buffer with no null in the slice, and a chunk all null.
        check_joined(vec![ints(0, 20, true).slice(1, 2), ints(0, 5, false)]);
        check_joined(vec![ints(0, 5, false), new_null_array(&DataType::Int64, 4)]);
        // Two types: refused.
        check_joined(vec![
            ints(0, 3, false),
            Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
        ]);
        let floats: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![Some(1.5), None])),
            Arc::new(Float64Array::from(vec![-0.0, f64::NAN])),
        ];
        check_joined(floats);
        let days: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from(vec![None, Some(19_000)])),
            Arc::new(Date32Array::from(vec![Some(-3)])),
        ];
        check_joined(days);
        let small: Vec<ArrayRef> = vec![
            Arc::new(arrow_array::Int32Array::from(vec![Some(1), None])),
            Arc::new(arrow_array::Int32Array::from(vec![7, 8, 9])),
        ];
        check_joined(small);
        // Text is joined by `joined_text`, not by the fallback to `concat`.
        let check_text_joined = |chunks: Vec<ArrayRef>| {
            assert!(joined_text(&chunks).is_some(), "joined by concat");
            check_joined(chunks);
        };
        let texts: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("a"), None])),
            Arc::new(StringArray::from(vec!["bc"])),
        ];
        check_text_joined(texts);
        // Text sliced (offsets not from 0), empty, all null, multi-byte,
        // and a null buffer with no null in the slice.
        let words = StringArray::from(vec![
            Some("éa"),
            None,
            Some(""),
            Some("longer words"),
            Some("x"),
            None,
            Some("ünï"),
        ]);
        let texts: Vec<ArrayRef> = vec![
            Arc::new(words.slice(2, 3)),
            Arc::new(StringArray::from(Vec::<&str>::new())),
            Arc::new(words.clone()),
            new_null_array(&DataType::Utf8, 3),
            Arc::new(words.slice(6, 1)),
            Arc::new(StringArray::from(vec!["a", "bb"]).slice(1, 1)),
        ];
        check_text_joined(texts);
        check_text_joined(vec![
            Arc::new(words.slice(3, 2)) as ArrayRef,
            Arc::new(words.slice(0, 1)),
        ]);
        let flags: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from(vec![Some(true), None])),
            Arc::new(BooleanArray::from(vec![false, true])),
        ];
        check_joined(flags);
    }
}
