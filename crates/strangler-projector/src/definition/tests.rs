use std::path::Path;

use super::{DedupMode, RouteResult, parse};

#[test]
fn the_shipped_example_parses() {
    let text = include_str!("../../../../projections/order_summary.toml");
    let def = parse(text, Path::new("order_summary.toml")).expect("example is valid");
    assert_eq!(def.name, "order_summary");
    assert_eq!(def.handlers.len(), 3);
    assert_eq!(def.routes[0].result, RouteResult::One);
    assert_eq!(def.routes[1].query, ["status"]);
}

#[test]
fn every_problem_is_reported_with_line_column_key_and_fix() {
    let text = r#"name = "orders"
topics = ["order"]
tables = ["orders"]
colour = "blue"

[setup]
all = "CREATE TABLE {{orders}} (id TEXT)"

[[handler]]
event_type = "OrderPlaced"
sql = "INSERT INTO {{order}} (id) VALUES (:id)"
params = { id = "key", extra = "/x", bad = "nonsense" }

[[route]]
path = "/orders/{id}"
sql = "SELECT * FROM {{orders}} WHERE id = :oid"
"#;
    let problems = parse(text, Path::new("p.toml")).expect_err("invalid");
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let all = shown.join("\n");
    assert!(all.contains("p.toml:4:1: `colour`: unknown key"), "{all}");
    assert!(
        all.contains("`handler[0].sql`: `{{order}}` is not one of the declared tables"),
        "{all}"
    );
    assert!(
        all.contains("`handler[0].params.extra`: `:extra` does not appear in the SQL"),
        "{all}"
    );
    assert!(
        all.contains("`handler[0].params.bad`: `nonsense` is not a parameter source"),
        "{all}"
    );
    assert!(
        all.contains("`route[0].sql`: `:oid` is neither a path capture nor a query parameter"),
        "{all}"
    );
    assert!(problems.iter().all(|p| !p.fix.is_empty()));
    let sql = problems.iter().find(|p| p.key == "handler[0].sql").unwrap();
    assert_eq!(sql.line_col, Some((11, 1)));
}

#[test]
fn a_wrong_type_names_the_key() {
    let text = "name = \"o\"\nversion = \"two\"\ntopics = [\"t\"]\ntables = [\"t\"]\n";
    let problems = parse(text, Path::new("p.toml")).expect_err("invalid");
    assert_eq!(problems[0].key, "version");
    assert_eq!(problems[0].line_col, Some((2, 1)));
}

#[test]
fn dedup_mode_and_window_are_read_and_checked() {
    let example = include_str!("../../../../projections/order_summary.toml");
    let def = parse(example, Path::new("o.toml")).expect("valid");
    assert_eq!(def.dedup.mode, DedupMode::Table, "the default");

    let windowed = format!("{example}\n[dedup]\nmode = \"window\"\nwindow = 5000\n");
    let def = parse(&windowed, Path::new("o.toml")).expect("valid");
    assert_eq!(
        (def.dedup.mode, def.dedup.window),
        (DedupMode::Window, 5000)
    );
    let p = crate::SqlProjection::new(def);
    assert_eq!(crate::Projection::settings(&p).dedup_window, Some(5000));

    let empty = format!("{example}\n[dedup]\nmode = \"window\"\nwindow = 0\n");
    let problems = parse(&empty, Path::new("o.toml")).expect_err("invalid");
    assert_eq!(problems[0].key, "dedup.window");
    assert!(problems[0].fix.contains("max_in_flight"), "{}", problems[0]);

    let typo = format!("{example}\n[dedup]\nmode = \"windows\"\n");
    let problems = parse(&typo, Path::new("o.toml")).expect_err("invalid");
    assert_eq!(problems[0].key, "dedup.mode");
    assert!(
        problems[0].to_string().contains("window"),
        "{}",
        problems[0]
    );
}
