use std::collections::HashMap;

use super::*;
use crate::event::{ParamSource, Value};

fn sources(key: &[&str]) -> HashMap<String, ParamSource> {
    key.iter()
        .map(|k| (k.to_string(), ParamSource::Key))
        .collect()
}

#[test]
fn a_single_row_insert_becomes_an_ordered_insert_from_unnest() {
    let sql = "INSERT INTO {{orders}} (id, total, at) VALUES (:id, :subtotal + :tax, :at)\n\
               ON CONFLICT (id) DO UPDATE SET total = excluded.total;";
    let f = classify(sql, &sources(&["id"]), 2).expect("batchable");
    assert_eq!(f.names, ["id", "subtotal", "tax", "at"]);
    let t = [
        ArrayType::Text,
        ArrayType::Int8,
        ArrayType::Int8,
        ArrayType::Text,
    ];
    let rendered = f.render(&t);
    let squeezed: String = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        squeezed,
        "INSERT INTO orders_v2 ( id , total , at ) SELECT strangler_u.strangler_p0 , \
         strangler_u.strangler_p1 + strangler_u.strangler_p2 , strangler_u.strangler_p3 FROM \
         UNNEST($1::text[], $2::int8[], $3::int8[], $4::text[]) WITH ORDINALITY AS \
         strangler_u(strangler_p0, strangler_p1, strangler_p2, strangler_p3, strangler_ord) \
         ORDER BY strangler_u.strangler_ord ON CONFLICT ( id ) DO UPDATE SET total = excluded . total"
    );
}

#[test]
fn a_keyed_update_becomes_update_from_unnest() {
    let sql =
        "UPDATE {{orders}} SET status = 'shipped', n = n + :n WHERE order_id = :k AND (x > 1 OR y)";
    let f = classify(sql, &sources(&["k"]), 1).expect("batchable");
    let r = f.render(&[ArrayType::Int8, ArrayType::Text]);
    let squeezed: String = r.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        squeezed,
        "UPDATE orders_v1 SET status = 'shipped' , n = n + strangler_u.strangler_p0 FROM \
         UNNEST($1::int8[], $2::text[]) AS strangler_u(strangler_p0, strangler_p1) WHERE order_id = \
         strangler_u.strangler_p1 AND ( x > 1 OR y )"
    );
}

#[test]
fn shapes_whose_multi_row_effect_could_differ_run_one_by_one() {
    let key = sources(&["k"]);
    for sql in [
        // A subquery would not see the rows inserted earlier in the same statement.
        "INSERT INTO {{t}} (a, b) VALUES (:k, (SELECT max(b) FROM {{t}}))",
        // A parameter after VALUES cannot be read from the UNNEST source.
        "INSERT INTO {{t}} (a, b) VALUES (:k, :b) ON CONFLICT (a) DO UPDATE SET b = :b",
        "INSERT INTO {{t}} (a) VALUES (:k), (:k)",
        "INSERT INTO {{t}} (a) VALUES (:k) RETURNING a",
        "INSERT INTO {{t}} VALUES (:k)",
        "INSERT INTO {{t}} (a, b) VALUES (:k, DEFAULT)",
        "WITH x AS (SELECT 1) INSERT INTO {{t}} (a) VALUES (:k)",
        "INSERT INTO {{t}} (a) VALUES (:k); DELETE FROM {{t}}",
        // The WHERE does not pin one key's rows.
        "UPDATE {{t}} SET b = :b WHERE customer = :customer",
        "UPDATE {{t}} SET b = :b WHERE a = :k OR b = 1",
        "UPDATE {{t}} SET b = :b WHERE a > :k",
        "UPDATE {{t}} SET b = :b",
        "UPDATE {{t}} SET b = x.b FROM x WHERE a = :k",
        "UPDATE {{t}} SET b = CASE WHEN :b THEN 1 END WHERE a = :k",
        "DELETE FROM {{t}} WHERE a = :k",
        "INSERT INTO {{t}} (a) VALUES ('unterminated)",
    ] {
        assert!(classify(sql, &key, 1).is_none(), "{sql}");
    }
}

#[test]
fn a_steps_values_share_one_type_or_the_step_runs_one_by_one() {
    let of = |v: &[Value]| ArrayType::of(v.iter());
    assert_eq!(of(&[Value::Int(1), Value::Null]), Some(ArrayType::Int8));
    assert_eq!(of(&[Value::Null, Value::Null]), Some(ArrayType::Int8));
    assert_eq!(
        of(&[Value::Text("a".into()), Value::Null]),
        Some(ArrayType::Text)
    );
    assert_eq!(of(&[Value::Int(1), Value::Float(1.5)]), None);
}

#[test]
fn the_schedule_keeps_each_keys_order_and_groups_statements() {
    // Units (key, statement): a placed then shipped, b placed, a amended, c placed, b shipped.
    let units = [
        (Some("a"), 0),
        (Some("a"), 1),
        (Some("b"), 0),
        (Some("a"), 2),
        (Some("c"), 0),
        (Some("b"), 1),
    ];
    let steps = schedule(&units);
    assert_eq!(
        steps,
        vec![
            Step {
                statement: 0,
                units: vec![0, 2, 4]
            },
            Step {
                statement: 1,
                units: vec![1, 5]
            },
            Step {
                statement: 2,
                units: vec![3]
            },
        ]
    );
    // The same key twice in a row with one statement goes to two steps.
    let steps = schedule(&[(Some("a"), 0), (Some("a"), 0), (None, 0), (None, 0)]);
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].units, [0, 2]);
    assert_eq!(steps[1].units, [1, 3]);
}

#[test]
fn every_statement_of_the_example_projection_batches() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../projections/order_summary.toml");
    let text = std::fs::read_to_string(&path).expect("projections/order_summary.toml");
    let def = crate::definition::parse(&text, &path).expect("valid");
    let p = crate::SqlProjection::new(def);
    assert_eq!(p.batched_statements(), (3, 3));
}
