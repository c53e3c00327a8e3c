"""The peer workload as a Polars lazy query, written as an expert would.

Usage: python polars_query.py DATA AS_OF OUT.parquet
"""

import datetime
import os
import sys

import polars as pl

data, as_of, out = sys.argv[1], sys.argv[2], sys.argv[3]
as_of = datetime.date.fromisoformat(as_of)
here = os.path.dirname(os.path.abspath(__file__))
codelists = os.path.join(here, "..", "..", "models", "codelists")


def scan(name):
    path = os.path.join(data, name + ".parquet")
    return pl.scan_parquet(path if os.path.exists(path) else os.path.join(data, name, "*.parquet"))


def two_years_back(d):
    try:
        return d.replace(year=d.year - 2)
    except ValueError:  # 29 February
        return d.replace(year=d.year - 2, day=28)


year_ago = as_of - datetime.timedelta(days=365)
window_2y = two_years_back(as_of)

efi_list = pl.scan_csv(os.path.join(codelists, "efi_clegg2016_snomed.csv"), schema_overrides={"code": pl.String})
hfrs_list = pl.scan_csv(os.path.join(codelists, "hfrs_gilbert2018.csv")).select(
    "code", (pl.col("points") * 10).round(0).cast(pl.Int64).alias("tenths")
)

patients = scan("patients")
# Registered on the as-of date: the latest registration started by then and
# not ended before it (then the first practice code); its PCN is the one the
# population table gives the practice.
registered = (
    scan("registrations")
    .filter(
        (pl.col("start_date") <= as_of)
        & (pl.col("end_date").is_null() | (pl.col("end_date") >= as_of))
        & pl.col("practice_code").is_not_null()
    )
    .sort(["person_id", "start_date", "practice_code"], descending=[False, True, False])
    .group_by("person_id")
    .agg(pl.col("practice_code").first())
)
practice_pcn = (
    patients.filter(pl.col("practice_code").is_not_null() & pl.col("pcn_code").is_not_null())
    .group_by("practice_code")
    .agg(pl.col("pcn_code").min())
)
people = (
    patients.filter(
        (pl.col("date_of_death").is_null() | (pl.col("date_of_death") > as_of))
        # Direct care (strata's default purpose): a type 1 opt-out is in no output.
        & pl.col("type1_opt_out").ne_missing(True)
    )
    .select("person_id", "birth_date")
    .join(registered, on="person_id")
    .join(practice_pcn, on="practice_code", how="left")
    .select("person_id", "pcn_code", "birth_date")
)
ae = (
    scan("ae_attendances")
    .filter((pl.col("arrival_date") > year_ago) & (pl.col("arrival_date") <= as_of))
    .group_by("person_id")
    .agg(pl.len().alias("ae_12m"))
)
admissions = scan("admissions")
emergency = (
    admissions.filter(
        (pl.col("admission_method") == "emergency")
        & (pl.col("admission_date") > year_ago)
        & (pl.col("admission_date") <= as_of)
    )
    .group_by("person_id")
    .agg(pl.len().alias("emergency_12m"))
)
efi = (
    scan("gp_events")
    .filter(pl.col("event_date") <= as_of)
    .select("person_id", pl.col("snomed_code").cast(pl.String))
    .join(efi_list, left_on="snomed_code", right_on="code")
    .group_by("person_id")
    .agg(pl.col("deficit").n_unique().alias("efi_deficits"))
)
hfrs = (
    admissions.filter((pl.col("admission_date") > window_2y) & (pl.col("admission_date") <= as_of))
    .select("person_id", "diagnoses")
    .explode("diagnoses")
    .select(
        "person_id",
        pl.col("diagnoses").str.replace_all("[^A-Za-z0-9]", "").str.to_uppercase().str.slice(0, 3).alias("code"),
    )
    .unique()
    .join(hfrs_list, on="code")
    .group_by("person_id")
    .agg((pl.col("tenths").sum() / 10).alias("hfrs"))
)
# Month and day are 8-bit integers in Polars: widen before arithmetic.
birthday_passed = (
    pl.col("birth_date").dt.month().cast(pl.Int32) * 100 + pl.col("birth_date").dt.day().cast(pl.Int32)
) <= (as_of.month * 100 + as_of.day)
result = (
    people.join(ae, on="person_id", how="left")
    .join(emergency, on="person_id", how="left")
    .join(efi, on="person_id", how="left")
    .join(hfrs, on="person_id", how="left")
    .with_columns(
        pl.col("ae_12m").fill_null(0),
        pl.col("emergency_12m").fill_null(0),
        pl.col("efi_deficits").fill_null(0),
        pl.col("hfrs").fill_null(0.0),
        (as_of.year - pl.col("birth_date").dt.year() - pl.when(birthday_passed).then(0).otherwise(1)).alias("age_years"),
    )
    .with_columns(
        (pl.col("ae_12m") >= 5).alias("hiu"),
        ((pl.col("efi_deficits") / 36 >= 0.24) | (pl.col("hfrs") > 15)).alias("frail"),
    )
    .filter(pl.col("hiu") | pl.col("frail"))
    .drop("birth_date")
    .sort(["pcn_code", "efi_deficits", "person_id"], descending=[False, True, False])
)
result.sink_parquet(out)
