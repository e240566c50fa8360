//! `docs/configuration.md` is generated from the configuration structs themselves
//! (`crates/strangler-core/src/config/`): every key with its type, its default (the `default_*`
//! function's value and the comment saying where it came from) and its `///` doc. This test
//! regenerates the reference and fails when the committed file differs, so the two cannot drift.
//!
//! After changing a configuration struct, regenerate the file with
//! `STRANGLER_WRITE_CONFIG_REFERENCE=1 cargo test -p strangler-demo --test config_reference`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use quote::ToTokens;
use syn::{Attribute, Expr, Fields, Item, ItemEnum, ItemFn, ItemStruct, Lit, Type};

/// Where the configuration structs live, and the one other file whose enums they use.
const SOURCES: [&str; 2] = [
    "crates/strangler-core/src/config",
    "crates/strangler-core/src/capability.rs",
];
const OUTPUT: &str = "docs/configuration.md";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every struct, enum, function and `impl Default` field initialiser, by file.
#[derive(Default)]
struct Source {
    structs: BTreeMap<String, (String, ItemStruct)>,
    enums: BTreeMap<String, ItemEnum>,
    fns: BTreeMap<(String, String), ItemFn>,
    /// (struct, field) -> the expression `impl Default` gives it.
    default_inits: BTreeMap<(String, String), Expr>,
}

impl Source {
    fn load() -> Source {
        let mut files = Vec::new();
        for s in SOURCES {
            let p = repo().join(s);
            if p.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    let f = e.unwrap().path();
                    if f.extension().is_some_and(|x| x == "rs") {
                        files.push(f);
                    }
                }
            } else {
                files.push(p);
            }
        }
        files.sort();
        let mut src = Source::default();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&f).unwrap();
            let file =
                syn::parse_file(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", f.display()));
            for item in file.items {
                match item {
                    Item::Struct(s) => {
                        src.structs.insert(s.ident.to_string(), (name.clone(), s));
                    }
                    Item::Enum(e) => {
                        src.enums.insert(e.ident.to_string(), e);
                    }
                    Item::Fn(func) => {
                        src.fns
                            .insert((name.clone(), func.sig.ident.to_string()), func);
                    }
                    Item::Impl(imp) => {
                        let is_default = imp
                            .trait_
                            .as_ref()
                            .is_some_and(|(_, p, _)| p.is_ident("Default"));
                        if !is_default {
                            continue;
                        }
                        let Type::Path(tp) = imp.self_ty.as_ref() else {
                            continue;
                        };
                        let owner = tp.path.segments.last().unwrap().ident.to_string();
                        for it in imp.items {
                            if let syn::ImplItem::Fn(f) = it
                                && let Some(syn::Stmt::Expr(Expr::Struct(lit), None)) =
                                    f.block.stmts.last()
                            {
                                for fv in &lit.fields {
                                    if let syn::Member::Named(id) = &fv.member {
                                        src.default_inits.insert(
                                            (owner.clone(), id.to_string()),
                                            fv.expr.clone(),
                                        );
                                    }
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        src
    }
}

/// The `///` lines of an item, joined into one paragraph.
fn docs(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if a.path().is_ident("doc")
            && let syn::Meta::NameValue(nv) = &a.meta
            && let Expr::Lit(l) = &nv.value
            && let Lit::Str(s) = &l.lit
        {
            let line = s.value().trim().to_string();
            if !line.is_empty() {
                lines.push(line);
            }
        }
    }
    lines.join(" ").trim().to_string()
}

/// `#[serde(...)]` settings this generator understands.
#[derive(Default)]
struct Serde {
    default: Option<Option<String>>,
    rename: Option<String>,
    rename_all: Option<String>,
    skip: bool,
}

fn serde_attrs(attrs: &[Attribute]) -> Serde {
    let mut s = Serde::default();
    for a in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        a.parse_nested_meta(|m| {
            let key = m
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            let value = if m.input.peek(syn::Token![=]) {
                Some(m.value()?.parse::<syn::LitStr>()?.value())
            } else {
                None
            };
            match key.as_str() {
                "default" => s.default = Some(value),
                "rename" => s.rename = value,
                "rename_all" => s.rename_all = value,
                "skip" => s.skip = true,
                _ => {}
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("reading #[serde] {}: {e}", a.to_token_stream()));
    }
    s
}

fn rename(ident: &str, rule: Option<&str>) -> String {
    let words = || {
        let mut w = String::new();
        for (i, c) in ident.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                w.push('_');
            }
            w.push(c.to_ascii_lowercase());
        }
        w
    };
    match rule {
        Some("lowercase") => ident.to_lowercase(),
        Some("snake_case") => words(),
        Some("kebab-case") => words().replace('_', "-"),
        _ => ident.to_string(),
    }
}

/// A field's type, unwrapped.
enum Shape {
    Section(String),
    Enum(String),
    Scalar(String),
}

struct Ty {
    shape: Shape,
    optional: bool,
    list: bool,
    map: bool,
}

fn generic_arg(seg: &syn::PathSegment, n: usize) -> Option<&Type> {
    match &seg.arguments {
        syn::PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .nth(n),
        _ => None,
    }
}

fn classify(ty: &Type, src: &Source) -> Ty {
    let Type::Path(tp) = ty else {
        panic!("unsupported field type {}", ty.to_token_stream());
    };
    let seg = tp.path.segments.last().unwrap();
    let name = seg.ident.to_string();
    let wrap = |inner: &Type, f: &dyn Fn(&mut Ty)| {
        let mut t = classify(inner, src);
        f(&mut t);
        t
    };
    match name.as_str() {
        "Option" => wrap(generic_arg(seg, 0).unwrap(), &|t| t.optional = true),
        "Vec" => wrap(generic_arg(seg, 0).unwrap(), &|t| t.list = true),
        "BTreeMap" | "HashMap" => wrap(generic_arg(seg, 1).unwrap(), &|t| t.map = true),
        _ => {
            let shape = if src.structs.contains_key(&name) {
                Shape::Section(name)
            } else if src.enums.contains_key(&name) {
                Shape::Enum(name)
            } else {
                Shape::Scalar(
                    match name.as_str() {
                        "String" => "string",
                        "PathBuf" => "path",
                        "bool" => "boolean",
                        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "integer",
                        "f32" | "f64" => "number",
                        other => panic!("add a TOML name for type `{other}` to the generator"),
                    }
                    .to_string(),
                )
            };
            Ty {
                shape,
                optional: false,
                list: false,
                map: false,
            }
        }
    }
}

/// A default expression as the TOML value it produces, where that is plain.
fn render_expr(e: &Expr, src: &Source) -> String {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Str(s) => format!("{:?}", s.value()),
            other => other.to_token_stream().to_string(),
        },
        Expr::MethodCall(m)
            if ["into", "to_string", "to_owned"].contains(&m.method.to_string().as_str()) =>
        {
            render_expr(&m.receiver, src)
        }
        Expr::Call(c) => {
            let callee = c.func.to_token_stream().to_string().replace(' ', "");
            match (callee.as_str(), c.args.first()) {
                ("String::from" | "PathBuf::from" | "Some", Some(a)) => render_expr(a, src),
                ("Vec::new" | "BTreeMap::new" | "HashMap::new", None) => "[]".into(),
                (path, None) if path.ends_with("::default") => {
                    let ty = path.trim_end_matches("::default");
                    match src.enums.get(ty) {
                        Some(_) => enum_default(ty, src),
                        None => "every key at its default".into(),
                    }
                }
                _ => format!("`{}`", e.to_token_stream()),
            }
        }
        Expr::Macro(m) if m.mac.path.is_ident("vec") => {
            let items: syn::punctuated::Punctuated<Expr, syn::Token![,]> = m
                .mac
                .parse_body_with(syn::punctuated::Punctuated::parse_terminated)
                .unwrap();
            let parts: Vec<String> = items.iter().map(|i| render_expr(i, src)).collect();
            format!("[{}]", parts.join(", "))
        }
        Expr::Path(p) if p.path.is_ident("None") => "none".into(),
        Expr::Path(p) if p.path.segments.len() == 2 => {
            let ty = p.path.segments[0].ident.to_string();
            let variant = p.path.segments[1].ident.to_string();
            match src.enums.get(&ty) {
                Some(en) => format!(
                    "{:?}",
                    rename(&variant, serde_attrs(&en.attrs).rename_all.as_deref())
                ),
                None => format!("`{}`", e.to_token_stream()),
            }
        }
        Expr::Binary(_) => match eval_int(e) {
            Some(n) => n.to_string(),
            None => format!("`{}`", e.to_token_stream()),
        },
        Expr::Paren(p) => render_expr(&p.expr, src),
        _ => format!("`{}`", e.to_token_stream()),
    }
}

/// Integer arithmetic in a default (`1 << 20`, `64 * 1024`).
fn eval_int(e: &Expr) -> Option<u64> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Int(i) => i.base10_parse().ok(),
            _ => None,
        },
        Expr::Paren(p) => eval_int(&p.expr),
        Expr::Binary(b) => {
            let (l, r) = (eval_int(&b.left)?, eval_int(&b.right)?);
            match b.op {
                syn::BinOp::Shl(_) => l.checked_shl(u32::try_from(r).ok()?),
                syn::BinOp::Mul(_) => l.checked_mul(r),
                syn::BinOp::Add(_) => l.checked_add(r),
                syn::BinOp::Sub(_) => l.checked_sub(r),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The serde name of an enum's `#[default]` variant, quoted as TOML.
fn enum_default(name: &str, src: &Source) -> String {
    let en = &src.enums[name];
    let rule = serde_attrs(&en.attrs).rename_all;
    en.variants
        .iter()
        .find(|v| v.attrs.iter().any(|a| a.path().is_ident("default")))
        .map(|v| format!("{:?}", rename(&v.ident.to_string(), rule.as_deref())))
        .unwrap_or_else(|| panic!("enum {name} has no #[default] variant"))
}

/// A rendered value as a table cell: code, except the words that describe rather than show.
fn shown(v: &str) -> String {
    let v = v.trim_matches('`');
    if v == "none" || v == "every key at its default" {
        v.to_string()
    } else {
        format!("`{v}`")
    }
}

/// The value and the reason of a `default_*` function: its tail expression and its doc.
fn default_fn(file: &str, name: &str, src: &Source) -> (String, String) {
    let f = src
        .fns
        .get(&(file.to_string(), name.to_string()))
        .unwrap_or_else(|| panic!("default function `{name}` not found in {file}"));
    let value = match f.block.stmts.last() {
        Some(syn::Stmt::Expr(e, None)) => render_expr(e, src),
        _ => format!("see `{name}()`"),
    };
    (value, docs(&f.attrs))
}

fn type_name(ty: &Ty, src: &Source) -> String {
    let base = match &ty.shape {
        Shape::Scalar(s) => s.clone(),
        Shape::Section(_) => "table".into(),
        Shape::Enum(e) => {
            let en = &src.enums[e];
            let rule = serde_attrs(&en.attrs).rename_all;
            let vs: Vec<String> = en
                .variants
                .iter()
                .map(|v| format!("`{}`", rename(&v.ident.to_string(), rule.as_deref())))
                .collect();
            format!("one of {}", vs.join(", "))
        }
    };
    if ty.list {
        format!("array of {base}")
    } else if ty.map {
        format!("table of {base}")
    } else {
        base
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// One section's table and, after it, its sub-sections.
fn section(out: &mut String, header: &str, struct_name: &str, note: &str, src: &Source) {
    let (file, st) = &src.structs[struct_name];
    writeln!(out, "## `{header}`\n").unwrap();
    let doc = docs(&st.attrs);
    if !doc.is_empty() {
        writeln!(out, "{doc}{note}\n").unwrap();
    }
    let Fields::Named(fields) = &st.fields else {
        panic!("{struct_name} has unnamed fields");
    };
    let bare = header.trim_matches(|c| c == '[' || c == ']');
    let container = serde_attrs(&st.attrs);
    let mut subs = Vec::new();
    writeln!(out, "| key | type | default | meaning |\n|---|---|---|---|").unwrap();
    for f in &fields.named {
        let attrs = serde_attrs(&f.attrs);
        if attrs.skip {
            continue;
        }
        let ident = f.ident.as_ref().unwrap().to_string();
        let key = attrs
            .rename
            .clone()
            .unwrap_or_else(|| rename(&ident, container.rename_all.as_deref()));
        let ty = classify(&f.ty, src);
        let meaning = docs(&f.attrs);
        if let Shape::Section(inner) = &ty.shape {
            let (sub_header, how) = if ty.list {
                (format!("[[{bare}.{key}]]"), "array of tables")
            } else if ty.map {
                (format!("[{bare}.{key}.<name>]"), "tables by name")
            } else {
                (format!("[{bare}.{key}]"), "table")
            };
            let sub_header = sub_header.replacen("[.", "[", 1).replacen("[[.", "[[", 1);
            writeln!(
                out,
                "| `{key}` | {how}, see [`{sub_header}`](#{}) | {} | {} |",
                anchor(&sub_header),
                if ty.optional || ty.list || ty.map {
                    "none"
                } else if attrs.default.is_none() && container.default.is_none() {
                    "**required**"
                } else {
                    "every key at its default"
                },
                cell(&meaning)
            )
            .unwrap();
            subs.push((sub_header, inner.clone(), ty.optional));
            continue;
        }
        let default = match &attrs.default {
            Some(Some(func)) => {
                let (v, why) = default_fn(file, func, src);
                if why.is_empty() {
                    shown(&v)
                } else {
                    format!("{} ({})", shown(&v), why)
                }
            }
            Some(None) | None if container.default.is_some() || attrs.default.is_some() => {
                match src
                    .default_inits
                    .get(&(struct_name.to_string(), ident.clone()))
                {
                    Some(e) => shown(&render_expr(e, src)),
                    None => implicit_default(&ty, src),
                }
            }
            _ if ty.optional => "none".into(),
            _ => "**required**".into(),
        };
        writeln!(
            out,
            "| `{key}` | {} | {} | {} |",
            type_name(&ty, src),
            cell(&default),
            cell(&meaning)
        )
        .unwrap();
    }
    writeln!(out).unwrap();
    for (h, inner, optional) in subs {
        let note = if optional {
            " Optional: absent unless written."
        } else {
            ""
        };
        section(out, &h, &inner, note, src);
    }
}

/// What `Default::default()` gives a field type with no initialiser of its own.
fn implicit_default(ty: &Ty, src: &Source) -> String {
    if ty.optional {
        return "none".into();
    }
    if ty.list {
        return "`[]`".into();
    }
    if ty.map {
        return "`{}`".into();
    }
    match &ty.shape {
        Shape::Scalar(s) if s == "boolean" => "`false`".into(),
        Shape::Scalar(s) if s == "integer" || s == "number" => "`0`".into(),
        Shape::Scalar(_) => "`\"\"`".into(),
        Shape::Section(_) => "every key at its default".into(),
        Shape::Enum(e) => shown(&enum_default(e, src)),
    }
}

/// GitHub's heading anchor for a `` `[header]` `` heading.
fn anchor(header: &str) -> String {
    header
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The enums' values, each with its meaning.
fn enums_used(src: &Source) -> String {
    let mut used = HashSet::new();
    for (_, st) in src.structs.values() {
        if let Fields::Named(fields) = &st.fields {
            for f in &fields.named {
                if let Shape::Enum(e) = classify_lenient(&f.ty, src) {
                    used.insert(e);
                }
            }
        }
    }
    let mut out = String::from("## Values\n\n");
    let mut names: Vec<_> = used.into_iter().collect();
    names.sort();
    for name in names {
        let en = &src.enums[&name];
        let rule = serde_attrs(&en.attrs).rename_all;
        writeln!(out, "**{name}**: {}\n", docs(&en.attrs)).unwrap();
        for v in &en.variants {
            writeln!(
                out,
                "- `{}`: {}",
                rename(&v.ident.to_string(), rule.as_deref()),
                docs(&v.attrs)
            )
            .unwrap();
        }
        writeln!(out).unwrap();
    }
    out
}

/// [`classify`] for any struct, including those outside the configuration tree.
fn classify_lenient(ty: &Type, src: &Source) -> Shape {
    let Type::Path(tp) = ty else {
        return Shape::Scalar(String::new());
    };
    let seg = tp.path.segments.last().unwrap();
    let name = seg.ident.to_string();
    if ["Option", "Vec"].contains(&name.as_str()) {
        return classify_lenient(generic_arg(seg, 0).unwrap(), src);
    }
    if src.enums.contains_key(&name) {
        Shape::Enum(name)
    } else {
        Shape::Scalar(String::new())
    }
}

fn generate() -> String {
    let src = Source::load();
    let mut out = String::from(
        "# Configuration reference\n\n\
         Every key of `strangler.toml`, generated from the configuration structs in\n\
         `crates/strangler-core/src/config/` (their `///` docs, types and `default_*` functions) by\n\
         `crates/strangler-demo/tests/config_reference.rs`, which fails when this file is out of date.\n\
         Do not edit it by hand: change the struct's doc and run\n\
         `STRANGLER_WRITE_CONFIG_REFERENCE=1 cargo test -p strangler-demo --test config_reference`.\n\n\
         Every section is optional; an empty file runs on the embedded defaults (SQLite and the\n\
         built-in log). Unknown keys are errors. String values may use `${NAME}` or\n\
         `${NAME:-default}` from the environment. Paths are relative to the configuration file.\n\
         `strangler check-config` validates a file and reports every problem with its line and fix.\n\n",
    );
    let (_, config) = &src.structs["Config"];
    let Fields::Named(fields) = &config.fields else {
        unreachable!()
    };
    let mut toc = String::new();
    let mut body = String::new();
    for f in &fields.named {
        let attrs = serde_attrs(&f.attrs);
        if attrs.skip {
            continue;
        }
        let key = attrs
            .rename
            .clone()
            .unwrap_or_else(|| f.ident.as_ref().unwrap().to_string());
        let ty = classify(&f.ty, &src);
        let Shape::Section(inner) = &ty.shape else {
            panic!("top-level key `{key}` is not a section");
        };
        let header = if ty.list {
            format!("[[{key}]]")
        } else {
            format!("[{key}]")
        };
        let what = if ty.list {
            " (any number)"
        } else if ty.optional {
            " (optional)"
        } else {
            ""
        };
        writeln!(
            toc,
            "- [`{header}`](#{}){what}: {}",
            anchor(&header),
            docs(&f.attrs)
        )
        .unwrap();
        let note = if ty.optional {
            " Optional: absent unless written."
        } else {
            ""
        };
        section(&mut body, &header, inner, note, &src);
    }
    out.push_str(&toc);
    out.push('\n');
    out.push_str(&body);
    out.push_str(&enums_used(&src));
    out.trim_end().to_string() + "\n"
}

#[test]
fn the_configuration_reference_is_generated_from_the_structs() {
    let generated = generate();
    let path = repo().join(OUTPUT);
    if std::env::var_os("STRANGLER_WRITE_CONFIG_REFERENCE").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{OUTPUT} is out of date with the configuration structs: regenerate it with \
         `STRANGLER_WRITE_CONFIG_REFERENCE=1 cargo test -p strangler-demo --test config_reference`"
    );
}

#[test]
fn the_reference_names_every_key_with_a_meaning_type_and_default() {
    let text = generate();
    // Keys every deployment touches, with the defaults the code gives them.
    for needle in [
        "## `[store]`",
        "| `url` | string | `\"sqlite://.strangler/control.db\"`",
        "## `[bus.kafka]`",
        "| `brokers` | string | **required**",
        "## `[[capability]]`",
        "| `log_partitions` | integer | `4`",
        "| `topic_template` | string | `\"outbox.event.{aggregatetype}\"`",
    ] {
        assert!(text.contains(needle), "the reference lacks {needle}");
    }
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        assert!(
            cells.len() >= 4 && !cells[3].trim_end_matches(" |").trim().is_empty(),
            "a key without a documented meaning: {line}"
        );
    }
}
