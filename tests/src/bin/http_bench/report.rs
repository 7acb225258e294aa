//! Figures of one run, their means over the rounds, and the ratios between
//! the proxies (of the means, with the range of the same ratio taken
//! round by round), as a Markdown table or JSON.

use serde_json::{Value, json};

use crate::proxies::Kind;

/// One figure of one proxy in one round against one backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub backend: &'static str,
    pub round: usize,
    pub proxy: Kind,
    pub row: String,
    pub value: f64,
}

/// A row of the table: a measure against one backend, every proxy's
/// figures round by round.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub backend: &'static str,
    pub name: String,
    /// Per proxy (in `Kind::ALL` order), the figure of each round (NaN where missing).
    pub rounds: [Vec<f64>; 3],
}

fn idx(k: Kind) -> usize {
    Kind::ALL.iter().position(|x| *x == k).unwrap()
}

/// Groups records into rows, in the order rows first appear.
pub fn rows(records: &[Record], rounds: usize) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for r in records {
        let at = match out
            .iter()
            .position(|x| x.backend == r.backend && x.name == r.row)
        {
            Some(i) => i,
            None => {
                out.push(Row {
                    backend: r.backend,
                    name: r.row.clone(),
                    rounds: std::array::from_fn(|_| vec![f64::NAN; rounds]),
                });
                out.len() - 1
            }
        };
        if let Some(v) = out[at].rounds[idx(r.proxy)].get_mut(r.round) {
            *v = r.value;
        }
    }
    out
}

/// Mean of the rounds that have a figure (NaN if none).
pub fn mean(v: &[f64]) -> f64 {
    let got: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if got.is_empty() {
        f64::NAN
    } else {
        got.iter().sum::<f64>() / got.len() as f64
    }
}

/// `a / b` of the means, and the lowest and highest `a / b` of one round.
pub fn ratio(a: &[f64], b: &[f64]) -> (f64, Option<(f64, f64)>) {
    let of_means = mean(a) / mean(b);
    let per_round: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x / y)
        .filter(|r| r.is_finite())
        .collect();
    let range = (per_round.len() > 1).then(|| {
        per_round
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                (lo.min(*r), hi.max(*r))
            })
    });
    (of_means, range)
}

fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_ratio((r, range): (f64, Option<(f64, f64)>)) -> String {
    if !r.is_finite() {
        return "-".into();
    }
    match range {
        Some((lo, hi)) => format!("{r:.2}x ({lo:.2}-{hi:.2})"),
        None => format!("{r:.2}x"),
    }
}

/// The Markdown table of one backend's rows.
pub fn table(rows: &[Row], backend: &str) -> String {
    let mut s = String::from(
        "| measure | rampart | nginx | HAProxy | rampart / nginx | rampart / HAProxy | HAProxy / nginx |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows.iter().filter(|r| r.backend == backend) {
        let [ra, ng, ha] = &r.rounds;
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            fmt_value(mean(ra)),
            fmt_value(mean(ng)),
            fmt_value(mean(ha)),
            fmt_ratio(ratio(ra, ng)),
            fmt_ratio(ratio(ra, ha)),
            fmt_ratio(ratio(ha, ng)),
        );
    }
    s
}

fn num(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// Every row as JSON: the rounds' figures, means and ratios.
pub fn to_json(rows: &[Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                let [ra, ng, ha] = &r.rounds;
                let per = |v: &Vec<f64>| {
                    json!({"rounds": v.iter().map(|x| num(*x)).collect::<Vec<_>>(), "mean": num(mean(v))})
                };
                json!({
                    "backend": r.backend,
                    "measure": r.name,
                    "rampart": per(ra),
                    "nginx": per(ng),
                    "haproxy": per(ha),
                    "rampart_vs_nginx": num(ratio(ra, ng).0),
                    "rampart_vs_haproxy": num(ratio(ra, ha).0),
                    "haproxy_vs_nginx": num(ratio(ha, ng).0),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(round: usize, proxy: Kind, row: &str, value: f64) -> Record {
        Record {
            backend: "hyper",
            round,
            proxy,
            row: row.into(),
            value,
        }
    }

    #[test]
    fn ratio_is_of_the_means_with_the_rounds_range() {
        let (r, range) = ratio(&[30.0, 50.0], &[40.0, 40.0]);
        assert!((r - 1.0).abs() < 1e-12);
        assert_eq!(range, Some((0.75, 1.25)));
        let (r, range) = ratio(&[30.0], &[40.0]);
        assert!((r - 0.75).abs() < 1e-12);
        assert_eq!(range, None, "one round has no range");
    }

    #[test]
    fn a_missing_round_is_left_out_not_counted_as_zero() {
        assert_eq!(mean(&[10.0, f64::NAN]), 10.0);
        assert!(mean(&[f64::NAN]).is_nan());
        let (_, range) = ratio(&[10.0, f64::NAN, 12.0], &[10.0, 10.0, 10.0]);
        assert_eq!(range, Some((1.0, 1.2)));
    }

    #[test]
    fn records_group_into_rows_by_backend_and_name() {
        let recs = vec![
            rec(0, Kind::Rampart, "a", 1.0),
            rec(0, Kind::Nginx, "a", 2.0),
            rec(1, Kind::Rampart, "a", 3.0),
            rec(1, Kind::Haproxy, "b", 4.0),
            Record {
                backend: "nginx",
                ..rec(0, Kind::Rampart, "a", 5.0)
            },
        ];
        let rows = rows(&recs, 2);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].rounds[0], vec![1.0, 3.0]);
        assert!(rows[0].rounds[1][1].is_nan());
        assert_eq!(rows[1].name, "b");
        assert_eq!(rows[1].rounds[2][1], 4.0);
        assert_eq!(rows[2].backend, "nginx");
    }

    #[test]
    fn table_shows_means_and_ratios() {
        let recs = vec![
            rec(0, Kind::Rampart, "h1 16c req/s", 40_000.0),
            rec(0, Kind::Nginx, "h1 16c req/s", 50_000.0),
            rec(0, Kind::Haproxy, "h1 16c req/s", 50_000.0),
        ];
        let t = table(&rows(&recs, 1), "hyper");
        assert!(
            t.contains("| h1 16c req/s | 40000 | 50000 | 50000 | 0.80x | 0.80x | 1.00x |"),
            "{t}"
        );
        assert_eq!(table(&rows(&recs, 1), "nginx").lines().count(), 2);
    }
}
