//! Running a route's SELECT and turning rows into JSON objects, on either store.

use serde_json::{Map, Value as Json};
use sqlx::{Column, Row, TypeInfo, ValueRef};
use strangler_store::Store;

/// Binds route parameters as text (absent ones as a text NULL, so `:p IS NULL` type-checks on
/// PostgreSQL).
macro_rules! bind_text {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for v in $params {
            q = q.bind(v.clone());
        }
        q
    }};
}

/// Runs `sql` (already rewritten for the store) with `params`; returns one JSON object per row.
pub async fn query_json(
    store: &Store,
    sql: &str,
    params: &[Option<String>],
    json_columns: &[String],
) -> Result<Vec<Map<String, Json>>, sqlx::Error> {
    let mut rows = match store {
        Store::Postgres(p) => {
            // PostgreSQL renders every type (numeric, timestamps, json) itself.
            let wrapped = format!(
                "SELECT row_to_json(t)::text FROM ({}) AS t",
                sql.trim().trim_end_matches(';')
            );
            let texts: Vec<String> = bind_text!(sqlx::query_scalar(&wrapped), params)
                .fetch_all(p)
                .await?;
            texts
                .into_iter()
                .map(|t| match serde_json::from_str(&t) {
                    Ok(Json::Object(m)) => Ok(m),
                    _ => Err(sqlx::Error::Protocol(
                        "row_to_json returned a non-object".into(),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Store::Sqlite(p) => {
            let rows = bind_text!(sqlx::query(sql), params).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let mut m = Map::new();
                for (i, col) in r.columns().iter().enumerate() {
                    let raw = r.try_get_raw(i)?;
                    let v = if raw.is_null() {
                        Json::Null
                    } else {
                        match raw.type_info().name() {
                            "INTEGER" | "BOOLEAN" => Json::from(r.try_get::<i64, _>(i)?),
                            "REAL" | "NUMERIC" => Json::from(r.try_get::<f64, _>(i)?),
                            "BLOB" => Json::from(
                                String::from_utf8_lossy(&r.try_get::<Vec<u8>, _>(i)?).into_owned(),
                            ),
                            _ => Json::from(r.try_get::<String, _>(i)?),
                        }
                    };
                    m.insert(col.name().to_string(), v);
                }
                out.push(m);
            }
            out
        }
    };
    for m in &mut rows {
        for c in json_columns {
            if let Some(Json::String(s)) = m.get(c)
                && let Ok(parsed) = serde_json::from_str::<Json>(s)
            {
                m.insert(c.clone(), parsed);
            }
        }
    }
    Ok(rows)
}
