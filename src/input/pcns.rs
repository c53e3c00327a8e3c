//! The optional `pcns` table: names for PCN codes, for titles and summaries
//! (a PCN lead knows "Bitterne", not "U20637"). Absent table, no names.

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::cast::AsArray;

use crate::error::{Error, Result};
use crate::input::table::{self, Table};
use crate::rules::check::Type;

pub const TABLE: &str = "pcns";

/// PCN code -> name, from `DIR/pcns.parquet` if present, and the table
/// read (for the manifest's inputs).
pub fn names(dir: &Path) -> Result<(BTreeMap<String, String>, Option<Table>)> {
    let Some(table) = Table::find(dir, TABLE)? else {
        return Ok((BTreeMap::new(), None));
    };
    for column in ["pcn_code", "pcn_name"] {
        let ty = table.column_type(column, "a PCN code or name").map_err(|e| {
            // Its column names are fixed: no rule file maps them.
            e.with_help("export the table with columns pcn_code and pcn_name (see `pcns` in docs/data-contract.md), or remove it")
        })?;
        if table::canonical_type(ty) != Some(Type::Str) {
            return Err(Error::data(
                &table.location,
                format!("column `{column}` should be text, not {ty}"),
            )
            .with_help("store PCN codes and names as text"));
        }
    }
    let mut names = BTreeMap::new();
    for group in table.row_groups() {
        let path = &table.parts[group.part].path;
        let columns = ["pcn_code", "pcn_name"];
        for batch in table.reader(group, &columns, &[])? {
            let batch = batch.map_err(|e| table.read_error(group, &columns, &e))?;
            let (codes, _) = table::canonical(table::column(&batch, "pcn_code"), path, "pcn_code")?;
            let (labels, _) =
                table::canonical(table::column(&batch, "pcn_name"), path, "pcn_name")?;
            for (code, name) in codes
                .as_string::<i32>()
                .iter()
                .zip(labels.as_string::<i32>())
            {
                if let (Some(code), Some(name)) = (code, name)
                    && let Some(other) = names.insert(code.to_string(), name.to_string())
                    && other != name
                {
                    // Which name would head the PCN's lists would be the
                    // file's order, not a choice.
                    return Err(Error::data(
                        path,
                        format!("pcn_code `{code}` has two names: `{other}` and `{name}`"),
                    )
                    .with_help("give each PCN code one row, or one name"));
                }
            }
        }
    }
    Ok((names, Some(table)))
}
