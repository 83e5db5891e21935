//! Content filters on endpoints (docs/ARCHITECTURE.md §22): a small JSON
//! expression over the event envelope that decides, in the router, whether an
//! event of a subscribed type becomes a delivery for the endpoint.
//!
//! ```json
//! {"and": [{"path": "data.region", "eq": "eu"},
//!          {"path": "data.score", "gte": 100},
//!          {"not": {"path": "data.test", "exists": true}}]}
//! ```
//!
//! A filter is compiled once ([`Filter::compile`]) when it is set and when the
//! registry loads it: paths are split, operands converted, limits checked. An
//! evaluation ([`Filter::matches`]) walks the already-parsed event and
//! allocates nothing. Every refusal names where it is, as the caller wrote it
//! (`filter.and[1].gte: expected a number or a string`).
use serde_json::{Map, Number, Value};
use std::cmp::Ordering as Ord;

/// Largest filter, as JSON text.
pub const MAX_BYTES: usize = 8 * 1024;
/// Deepest nesting of `and`/`or`/`not` (the filter itself is level 1).
pub const MAX_DEPTH: usize = 8;
/// Most nodes (conditions and `and`/`or`/`not`) in one filter.
pub const MAX_NODES: usize = 64;
/// Most values in one `in` list.
pub const MAX_IN_ITEMS: usize = 256;
/// Most segments in one path, the root (`data`) included.
pub const MAX_PATH_SEGMENTS: usize = 16;
/// Longest path and longest string operand, in bytes.
pub const MAX_STRING_BYTES: usize = 1024;

/// Why a filter was refused: `field` is where (`filter.and[1].gte`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    pub field: String,
    pub message: String,
}

fn refuse<T>(field: &str, message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError {
        field: field.to_owned(),
        message: message.into(),
    })
}

/// The event a filter is evaluated against: the envelope's fields and its
/// parsed `data`.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub tenant_id: Option<&'a str>,
    pub timestamp: &'a str,
    pub data: &'a Value,
}

impl<'a> Event<'a> {
    /// `env` with its `data` already parsed as `data`.
    pub fn of(env: &'a crate::Envelope, data: &'a Value) -> Self {
        Event {
            id: &env.id,
            event_type: &env.event_type,
            tenant_id: env.tenant_id.as_deref(),
            timestamp: &env.timestamp,
            data,
        }
    }
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Cond(Path, Test),
}

/// The envelope field a path starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Id,
    Type,
    TenantId,
    Timestamp,
    Data,
}

#[derive(Debug, Clone)]
struct Path {
    root: Root,
    /// Below `data`: object keys, or array indexes when all digits.
    segs: Box<[Seg]>,
}

#[derive(Debug, Clone)]
struct Seg {
    key: Box<str>,
    /// The key read as an array index (when the value there is an array).
    index: Option<usize>,
}

#[derive(Debug, Clone)]
enum Scalar {
    Null,
    Bool(bool),
    Num(Num),
    Str(Box<str>),
}

#[derive(Debug, Clone, Copy)]
enum Num {
    I(i64),
    U(u64),
    F(f64),
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// The operand of a comparison: numbers compare with numbers, strings with
/// strings (byte order, which is time order for RFC 3339 timestamps in UTC).
#[derive(Debug, Clone)]
enum Bound {
    Num(Num),
    Str(Box<str>),
}

#[derive(Debug, Clone)]
enum Test {
    Eq(Scalar),
    Ne(Scalar),
    Cmp(Cmp, Bound),
    In(Box<[Scalar]>),
    Exists(bool),
}

/// A value found at a path, borrowed from the event.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Null,
    Bool(bool),
    Num(&'a Number),
    Str(&'a str),
    Array(&'a [Value]),
    Object,
}

impl<'a> Val<'a> {
    fn of(v: &'a Value) -> Self {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n),
            Value::String(s) => Val::Str(s),
            Value::Array(a) => Val::Array(a),
            Value::Object(_) => Val::Object,
        }
    }
}

const OPERATORS: &str = "eq, ne, gt, gte, lt, lte, in or exists";
const ROOTS: &str = "data, type, id, tenant_id or timestamp";

impl Filter {
    /// Parses and compiles a filter from JSON text (the CLI's `--filter`).
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        if text.len() > MAX_BYTES {
            return refuse(
                "filter",
                format!("is {} bytes; at most {MAX_BYTES} bytes", text.len()),
            );
        }
        if text.contains('\0') || crate::text::has_nul_escape(text.as_bytes()) {
            return refuse("filter", "contains the character \\u0000");
        }
        let v: Value = serde_json::from_str(text)
            .or_else(|e| refuse("filter", format!("is not valid JSON: {e}")))?;
        Filter::compile(&v)
    }

    /// Compiles a filter given as JSON (the API's `filter` field).
    pub fn compile(v: &Value) -> Result<Filter, FilterError> {
        let size = serde_json::to_string(v).map_or(usize::MAX, |s| s.len());
        if size > MAX_BYTES {
            return refuse(
                "filter",
                format!("is {size} bytes of JSON; at most {MAX_BYTES} bytes"),
            );
        }
        let mut nodes = 0;
        let root = node(v, "filter", 1, &mut nodes)?;
        Ok(Filter { root })
    }

    /// A filter no event passes: what an endpoint gets when its stored filter
    /// no longer compiles (an endpoint that asked for some events must not
    /// receive all of them).
    pub fn nothing() -> Filter {
        Filter {
            root: Node::Or(Box::new([])),
        }
    }

    /// True when `ev` passes.
    pub fn matches(&self, ev: &Event<'_>) -> bool {
        self.root.eval(ev)
    }
}

fn node(v: &Value, at: &str, depth: usize, nodes: &mut usize) -> Result<Node, FilterError> {
    *nodes += 1;
    if *nodes > MAX_NODES {
        return refuse(
            at,
            format!(
                "too many conditions: a filter has at most {MAX_NODES} (conditions, and, or, not)"
            ),
        );
    }
    if depth > MAX_DEPTH {
        return refuse(
            at,
            format!("nested too deeply: at most {MAX_DEPTH} levels of and/or/not"),
        );
    }
    let Value::Object(m) = v else {
        return refuse(
            at,
            "expected an object: a condition such as {\"path\": \"data.region\", \"eq\": \"eu\"}, or {\"and\": [...]}, {\"or\": [...]}, {\"not\": {...}}",
        );
    };
    if m.contains_key("path") {
        return condition(m, at);
    }
    let mut keys = m.iter();
    let (Some((k, v)), None) = (keys.next(), keys.next()) else {
        return refuse(
            at,
            "expected exactly one of `and`, `or`, `not`, or a condition with `path`",
        );
    };
    let here = format!("{at}.{}", shown(k));
    match k.as_str() {
        "and" | "or" => {
            let items = match v {
                Value::Array(items) if !items.is_empty() => items,
                _ => return refuse(&here, "expected a non-empty array of filters"),
            };
            let mut out = Vec::with_capacity(items.len().min(MAX_NODES));
            for (i, item) in items.iter().enumerate() {
                out.push(node(item, &format!("{here}[{i}]"), depth + 1, nodes)?);
            }
            let out = out.into_boxed_slice();
            Ok(if k == "and" {
                Node::And(out)
            } else {
                Node::Or(out)
            })
        }
        "not" => Ok(Node::Not(Box::new(node(v, &here, depth + 1, nodes)?))),
        _ => refuse(
            &here,
            "unknown key: expected `and`, `or`, `not`, or a condition with `path`",
        ),
    }
}

/// A key as it may appear in an error's field: short keys of plain
/// characters as they are, anything else elided.
fn shown(k: &str) -> &str {
    let plain = k
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain && !k.is_empty() && k.len() <= 40 {
        k
    } else {
        "…"
    }
}

fn condition(m: &Map<String, Value>, at: &str) -> Result<Node, FilterError> {
    let path = path(&m["path"], &format!("{at}.path"))?;
    let mut op: Option<(&String, &Value)> = None;
    for (k, v) in m.iter().filter(|(k, _)| *k != "path") {
        if let Some((first, _)) = op {
            return refuse(
                at,
                format!(
                    "a condition has one operator besides `path`, found `{}` and `{}`",
                    shown(first),
                    shown(k)
                ),
            );
        }
        op = Some((k, v));
    }
    let Some((k, v)) = op else {
        return refuse(
            at,
            format!("a condition needs an operator besides `path`: {OPERATORS}"),
        );
    };
    let here = format!("{at}.{}", shown(k));
    let test = match k.as_str() {
        "eq" => Test::Eq(scalar(v, &here)?),
        "ne" => Test::Ne(scalar(v, &here)?),
        "gt" => Test::Cmp(Cmp::Gt, bound(v, &here)?),
        "gte" => Test::Cmp(Cmp::Gte, bound(v, &here)?),
        "lt" => Test::Cmp(Cmp::Lt, bound(v, &here)?),
        "lte" => Test::Cmp(Cmp::Lte, bound(v, &here)?),
        "in" => {
            let items = match v {
                Value::Array(items) if !items.is_empty() && items.len() <= MAX_IN_ITEMS => items,
                _ => {
                    return refuse(
                        &here,
                        format!("expected an array of 1 to {MAX_IN_ITEMS} strings, numbers, booleans or nulls"),
                    )
                }
            };
            let list = items
                .iter()
                .enumerate()
                .map(|(i, item)| scalar(item, &format!("{here}[{i}]")))
                .collect::<Result<Box<[Scalar]>, _>>()?;
            Test::In(list)
        }
        "exists" => match v {
            Value::Bool(b) => Test::Exists(*b),
            _ => return refuse(&here, "expected true or false"),
        },
        _ => return refuse(&here, format!("unknown operator: expected {OPERATORS}")),
    };
    Ok(Node::Cond(path, test))
}

fn path(v: &Value, at: &str) -> Result<Path, FilterError> {
    let expected = format!("expected a dotted path starting at {ROOTS}, such as \"data.customer.id\" (or an array of its segments)");
    let segs: Vec<&str> = match v {
        Value::String(s) => {
            if s.is_empty() || s.len() > MAX_STRING_BYTES {
                return refuse(at, expected);
            }
            s.split('.').collect()
        }
        Value::Array(a) => a
            .iter()
            .map(|s| s.as_str().filter(|s| s.len() <= MAX_STRING_BYTES))
            .collect::<Option<Vec<&str>>>()
            .ok_or_else(|| FilterError {
                field: at.to_owned(),
                message: expected.clone(),
            })?,
        _ => return refuse(at, expected),
    };
    if segs.len() > MAX_PATH_SEGMENTS {
        return refuse(
            at,
            format!("has {} segments; at most {MAX_PATH_SEGMENTS}", segs.len()),
        );
    }
    if segs.iter().any(|s| s.is_empty()) {
        return refuse(at, "has an empty segment");
    }
    if segs.iter().any(|s| s.contains('\0')) {
        return refuse(at, "contains the character \\u0000");
    }
    let root = match segs.first().copied() {
        Some("data") => Root::Data,
        Some("type") => Root::Type,
        Some("id") => Root::Id,
        Some("tenant_id") => Root::TenantId,
        Some("timestamp") => Root::Timestamp,
        _ => return refuse(at, expected),
    };
    if root != Root::Data && segs.len() > 1 {
        return refuse(
            at,
            format!("`{}` is a string: only `data` has fields below it", segs[0]),
        );
    }
    let segs = segs[1..]
        .iter()
        .map(|s| Seg {
            key: (*s).into(),
            index: (s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten(),
        })
        .collect();
    Ok(Path { root, segs })
}

fn scalar(v: &Value, at: &str) -> Result<Scalar, FilterError> {
    Ok(match v {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => Scalar::Num(num(n)),
        Value::String(s) => Scalar::Str(string(s, at)?),
        _ => return refuse(at, "expected a string, a number, true, false or null"),
    })
}

fn bound(v: &Value, at: &str) -> Result<Bound, FilterError> {
    Ok(match v {
        Value::Number(n) => Bound::Num(num(n)),
        Value::String(s) => Bound::Str(string(s, at)?),
        _ => return refuse(at, "expected a number (or a string, compared byte by byte)"),
    })
}

fn string(s: &str, at: &str) -> Result<Box<str>, FilterError> {
    if s.len() > MAX_STRING_BYTES {
        return refuse(at, format!("is longer than {MAX_STRING_BYTES} bytes"));
    }
    if s.contains('\0') {
        return refuse(at, "contains the character \\u0000");
    }
    Ok(s.into())
}

fn num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::I(i)
    } else if let Some(u) = n.as_u64() {
        Num::U(u)
    } else {
        Num::F(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Numbers compare by value whatever their JSON form (`1`, `1.0`, `1e0`);
/// integers exactly, beyond 2^53 too.
fn cmp_num(a: Num, b: Num) -> Option<Ord> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::U(x), Num::U(y)) => Some(x.cmp(&y)),
        (Num::I(x), Num::U(y)) => Some(u64::try_from(x).map_or(Ord::Less, |x| x.cmp(&y))),
        (Num::U(_), Num::I(_)) => cmp_num(b, a).map(Ord::reverse),
        _ => as_f64(a).partial_cmp(&as_f64(b)),
    }
}

fn as_f64(n: Num) -> f64 {
    match n {
        Num::I(i) => i as f64,
        Num::U(u) => u as f64,
        Num::F(f) => f,
    }
}

impl Scalar {
    /// Same type and value (numbers by value).
    fn equals(&self, v: Val<'_>) -> bool {
        match (self, v) {
            (Scalar::Null, Val::Null) => true,
            (Scalar::Bool(a), Val::Bool(b)) => *a == b,
            (Scalar::Num(a), Val::Num(b)) => cmp_num(*a, num(b)) == Some(Ord::Equal),
            (Scalar::Str(a), Val::Str(b)) => **a == *b,
            _ => false,
        }
    }
}

impl Bound {
    /// How `v` compares to this bound; `None` for another type.
    fn cmp_to(&self, v: Val<'_>) -> Option<Ord> {
        match (self, v) {
            (Bound::Num(b), Val::Num(n)) => cmp_num(num(n), *b),
            (Bound::Str(b), Val::Str(s)) => Some(s.as_bytes().cmp(b.as_bytes())),
            _ => None,
        }
    }
}

impl Path {
    /// The value at this path, `None` when there is none.
    fn resolve<'a>(&self, ev: &Event<'a>) -> Option<Val<'a>> {
        match self.root {
            Root::Id => Some(Val::Str(ev.id)),
            Root::Type => Some(Val::Str(ev.event_type)),
            Root::TenantId => Some(ev.tenant_id.map_or(Val::Null, Val::Str)),
            Root::Timestamp => Some(Val::Str(ev.timestamp)),
            Root::Data => {
                let mut v = ev.data;
                for s in self.segs.iter() {
                    v = match v {
                        Value::Object(m) => m.get(&*s.key)?,
                        Value::Array(a) => a.get(s.index?)?,
                        _ => return None,
                    };
                }
                Some(Val::of(v))
            }
        }
    }
}

impl Test {
    fn eval(&self, found: Option<Val<'_>>) -> bool {
        match self {
            Test::Exists(want) => found.is_some() == *want,
            Test::Eq(s) => found.is_some_and(|v| s.equals(v)),
            Test::Ne(s) => !found.is_some_and(|v| s.equals(v)),
            Test::Cmp(c, b) => found.and_then(|v| b.cmp_to(v)).is_some_and(|o| match c {
                Cmp::Gt => o == Ord::Greater,
                Cmp::Gte => o != Ord::Less,
                Cmp::Lt => o == Ord::Less,
                Cmp::Lte => o != Ord::Greater,
            }),
            Test::In(list) => match found {
                None => false,
                Some(Val::Array(items)) => items
                    .iter()
                    .any(|i| list.iter().any(|s| s.equals(Val::of(i)))),
                Some(v) => list.iter().any(|s| s.equals(v)),
            },
        }
    }
}

impl Node {
    fn eval(&self, ev: &Event<'_>) -> bool {
        match self {
            Node::And(n) => n.iter().all(|n| n.eval(ev)),
            Node::Or(n) => n.iter().any(|n| n.eval(ev)),
            Node::Not(n) => !n.eval(ev),
            Node::Cond(p, t) => t.eval(p.resolve(ev)),
        }
    }
}

/// The filter grammar as JSON Schemas, for the OpenAPI document's
/// `components.schemas` (`Filter`, `FilterAnd`, `FilterOr`, `FilterNot`,
/// `FilterCondition`, `FilterScalar`, `FilterBound`). They sit beside the
/// parser, with its limits, so the two change together; the parser stays the
/// authority (a schema cannot say "at most 64 nodes"). Long because it is
/// seven JSON literals, one per schema, read best as one list.
pub fn json_schemas() -> Vec<(&'static str, Value)> {
    let r = |name: &str| serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
    let filters =
        |min: usize| serde_json::json!({"type": "array", "minItems": min, "items": r("Filter")});
    vec![
        (
            "Filter",
            serde_json::json!({
                "description": format!(
                    "A content filter over the event envelope: a condition, or `and`/`or` of filters, or \
                     `not` of one. An event of a subscribed type that does not pass creates no delivery \
                     for the webhook. At most {MAX_BYTES} bytes of JSON, {MAX_NODES} nodes, {MAX_DEPTH} \
                     levels of nesting; strings of at most {MAX_STRING_BYTES} bytes without \\u0000. A \
                     refusal is a 422 whose `field` says where, e.g. `filter.and[1].gte`."),
                "oneOf": [r("FilterAnd"), r("FilterOr"), r("FilterNot"), r("FilterCondition")],
                "examples": [{"and": [{"path": "data.region", "eq": "eu"}, {"path": "data.score", "gte": 100}]}],
            }),
        ),
        (
            "FilterAnd",
            serde_json::json!({
                "type": "object", "required": ["and"], "additionalProperties": false,
                "description": "Passes when every filter passes.",
                "properties": {"and": filters(1)},
            }),
        ),
        (
            "FilterOr",
            serde_json::json!({
                "type": "object", "required": ["or"], "additionalProperties": false,
                "description": "Passes when any filter passes.",
                "properties": {"or": filters(1)},
            }),
        ),
        (
            "FilterNot",
            serde_json::json!({
                "type": "object", "required": ["not"], "additionalProperties": false,
                "description": "Passes when the filter does not.",
                "properties": {"not": r("Filter")},
            }),
        ),
        (
            "FilterCondition",
            serde_json::json!({
                "type": "object", "required": ["path"], "additionalProperties": false,
                "minProperties": 2, "maxProperties": 2,
                "description": "`path` and exactly one operator. `ne` is `not eq` (a missing value is not \
                                equal); every other operator fails on a missing value, except `exists: false`.",
                "properties": {
                    "path": {
                        "description": format!(
                            "Where in the envelope: `data` followed by keys (an all-digit segment also \
                             indexes an array), or one of `type`, `id`, `tenant_id`, `timestamp`. A dotted \
                             string (`data.customer.id`), or an array of segments for keys that contain a \
                             dot (`[\"data\", \"a.b\"]`). At most {MAX_PATH_SEGMENTS} segments."),
                        "oneOf": [
                            {"type": "string", "minLength": 1, "maxLength": MAX_STRING_BYTES, "examples": ["data.region"]},
                            {"type": "array", "minItems": 1, "maxItems": MAX_PATH_SEGMENTS,
                             "items": {"type": "string", "minLength": 1}},
                        ],
                    },
                    "eq": r("FilterScalar"),
                    "ne": r("FilterScalar"),
                    "gt": r("FilterBound"),
                    "gte": r("FilterBound"),
                    "lt": r("FilterBound"),
                    "lte": r("FilterBound"),
                    "in": {
                        "type": "array", "minItems": 1, "maxItems": MAX_IN_ITEMS, "items": r("FilterScalar"),
                        "description": "Passes when the value equals one of these; when the value is an \
                                        array, when one of its elements does.",
                    },
                    "exists": {
                        "type": "boolean",
                        "description": "true: the path has a value (null counts); false: it has none.",
                    },
                },
            }),
        ),
        (
            "FilterScalar",
            serde_json::json!({
                "description": "A string, a number, true, false or null. Numbers equal numbers by value \
                                (1 = 1.0); a string never equals a number.",
                "oneOf": [
                    {"type": "string", "maxLength": MAX_STRING_BYTES},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                ],
            }),
        ),
        (
            "FilterBound",
            serde_json::json!({
                "description": "A number (compared with numbers), or a string (compared byte by byte with \
                                strings: RFC 3339 UTC timestamps compare in time order). Another type, or no \
                                value at the path, never passes.",
                "oneOf": [{"type": "number"}, {"type": "string", "maxLength": MAX_STRING_BYTES}],
            }),
        ),
    ]
}

/// The schema of an optional filter field: `Filter` or null (the fields
/// hold the filter as JSON; [`json_schemas`] describes it).
pub fn nullable_schema_ref() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::openapi::schema::{Object, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(utoipa::openapi::Ref::from_schema_name("Filter"))
        .item(Object::with_type(Type::Null))
        .description(Some(
            "A content filter: only the events that pass it are delivered. null: every event of \
             the subscribed types.",
        ))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "region": "eu",
            "score": 120,
            "ratio": 0.5,
            "big": 18446744073709551615u64,
            "neg": -3,
            "flag": true,
            "nothing": null,
            "score_text": "120",
            "tags": ["vip", "beta", 7],
            "customer": {"id": "c_1", "plan": {"name": "pro"}, "a.b": 1},
            "items": [{"sku": "A"}, {"sku": "B"}],
        })
    }

    fn check(filter: Value) -> bool {
        let d = data();
        let ev = Event {
            id: "evt_1",
            event_type: "order.created",
            tenant_id: Some("acme"),
            timestamp: "2026-01-02T03:04:05.000Z",
            data: &d,
        };
        Filter::compile(&filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches(&ev)
    }

    fn refused(filter: Value) -> String {
        Filter::compile(&filter)
            .map(|_| "compiled".to_owned())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn equality_is_typed_numbers_by_value() {
        let cases = [
            (json!({"path": "data.region", "eq": "eu"}), true),
            (json!({"path": "data.region", "eq": "us"}), false),
            (json!({"path": "data.score", "eq": 120}), true),
            (json!({"path": "data.score", "eq": 120.0}), true),
            (json!({"path": "data.score", "eq": "120"}), false),
            (json!({"path": "data.score_text", "eq": 120}), false),
            (json!({"path": "data.score_text", "eq": "120"}), true),
            (json!({"path": "data.flag", "eq": true}), true),
            (json!({"path": "data.flag", "eq": "true"}), false),
            (json!({"path": "data.nothing", "eq": null}), true),
            (json!({"path": "data.missing", "eq": null}), false),
            (
                json!({"path": "data.big", "eq": 18446744073709551615u64}),
                true,
            ),
            (
                json!({"path": "data.big", "eq": 18446744073709551614u64}),
                false,
            ),
            (json!({"path": "data.customer", "eq": "c_1"}), false),
            (
                json!({"path": "data.customer.plan.name", "eq": "pro"}),
                true,
            ),
            (json!({"path": ["data", "customer", "a.b"], "eq": 1}), true),
            (json!({"path": "data.items.1.sku", "eq": "B"}), true),
            (json!({"path": "data.items.2.sku", "eq": "B"}), false),
            (json!({"path": "data.region.x", "eq": "eu"}), false),
            (json!({"path": "type", "eq": "order.created"}), true),
            (json!({"path": "tenant_id", "eq": "acme"}), true),
            (json!({"path": "id", "ne": "evt_1"}), false),
            // `ne` is `not eq`: a missing field is not equal.
            (json!({"path": "data.missing", "ne": "eu"}), true),
            (json!({"path": "data.region", "ne": "eu"}), false),
        ];
        for (f, want) in cases {
            assert_eq!(check(f.clone()), want, "{f}");
        }
    }

    #[test]
    fn comparisons_take_numbers_with_numbers_and_strings_with_strings() {
        let cases = [
            (json!({"path": "data.score", "gte": 100}), true),
            (json!({"path": "data.score", "gte": 120}), true),
            (json!({"path": "data.score", "gt": 120}), false),
            (json!({"path": "data.score", "lt": 120.5}), true),
            (json!({"path": "data.score", "lte": 119}), false),
            (json!({"path": "data.ratio", "gt": 0.25}), true),
            (json!({"path": "data.neg", "lt": 0}), true),
            (
                json!({"path": "data.neg", "lt": 18446744073709551615u64}),
                true,
            ),
            (json!({"path": "data.big", "gt": -1}), true),
            // A string is never compared with a number, either way round.
            (json!({"path": "data.score_text", "gte": 100}), false),
            (json!({"path": "data.score", "gte": "100"}), false),
            (json!({"path": "data.missing", "lt": 1}), false),
            (json!({"path": "data.nothing", "lt": 1}), false),
            (
                json!({"path": "timestamp", "gte": "2026-01-01T00:00:00Z"}),
                true,
            ),
            (
                json!({"path": "timestamp", "lt": "2026-01-01T00:00:00Z"}),
                false,
            ),
            (json!({"path": "data.region", "gt": "ea"}), true),
        ];
        for (f, want) in cases {
            assert_eq!(check(f.clone()), want, "{f}");
        }
    }

    #[test]
    fn in_matches_a_value_or_any_element_of_an_array() {
        let cases = [
            (json!({"path": "data.region", "in": ["us", "eu"]}), true),
            (json!({"path": "data.region", "in": ["us", "ap"]}), false),
            (json!({"path": "data.score", "in": [1, 120.0]}), true),
            (json!({"path": "data.score", "in": ["120"]}), false),
            (json!({"path": "data.tags", "in": ["vip"]}), true),
            (json!({"path": "data.tags", "in": [7]}), true),
            (json!({"path": "data.tags", "in": ["gold", "7"]}), false),
            (json!({"path": "data.missing", "in": [null]}), false),
            (json!({"path": "data.nothing", "in": [null]}), true),
            (json!({"path": "tenant_id", "in": ["acme", "globex"]}), true),
        ];
        for (f, want) in cases {
            assert_eq!(check(f.clone()), want, "{f}");
        }
    }

    #[test]
    fn exists_tells_absent_from_null() {
        assert!(check(json!({"path": "data.nothing", "exists": true})));
        assert!(!check(json!({"path": "data.missing", "exists": true})));
        assert!(check(json!({"path": "data.missing", "exists": false})));
        assert!(!check(json!({"path": "data.items.5", "exists": true})));
        assert!(check(json!({"path": "data.items.0", "exists": true})));
    }

    #[test]
    fn and_or_not_nest() {
        let eu_big = json!({"and": [{"path": "data.region", "eq": "eu"}, {"path": "data.score", "gte": 100}]});
        assert!(check(eu_big.clone()));
        assert!(!check(json!({"not": eu_big})));
        assert!(check(json!({"or": [
            {"path": "data.region", "eq": "us"},
            {"not": {"or": [{"path": "data.flag", "eq": false}, {"path": "data.missing", "exists": true}]}}
        ]})));
        assert!(!check(json!({"or": [
            {"path": "data.region", "eq": "us"},
            {"and": [{"path": "data.flag", "eq": true}, {"not": {"path": "data.tags", "in": ["beta"]}}]}
        ]})));
        assert!(check(
            json!({"not": {"not": {"path": "data.region", "eq": "eu"}}})
        ));
        let ev = Event {
            id: "e",
            event_type: "t",
            tenant_id: None,
            timestamp: "",
            data: &Value::Null,
        };
        assert!(!Filter::nothing().matches(&ev));
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                json!({"and": [{"path": "data.a", "eq": 1}, {"path": "data.b", "gte": true}]}),
                "filter.and[1].gte: expected a number (or a string, compared byte by byte)",
            ),
            (
                json!({"and": []}),
                "filter.and: expected a non-empty array of filters",
            ),
            (
                json!({"or": {"path": "data.a", "eq": 1}}),
                "filter.or: expected a non-empty array of filters",
            ),
            (json!([]), "filter: expected an object"),
            (
                json!({}),
                "filter: expected exactly one of `and`, `or`, `not`, or a condition with `path`",
            ),
            (
                json!({"and": [], "or": []}),
                "filter: expected exactly one of",
            ),
            (json!({"xor": []}), "filter.xor: unknown key"),
            (
                json!({"not": {"path": "data.a"}}),
                "filter.not: a condition needs an operator",
            ),
            (
                json!({"path": "data.a", "eq": 1, "ne": 2}),
                "filter: a condition has one operator besides `path`",
            ),
            (
                json!({"path": "data.a", "like": "x"}),
                "filter.like: unknown operator",
            ),
            (
                json!({"path": "data.a", "eq": [1]}),
                "filter.eq: expected a string, a number, true, false or null",
            ),
            (
                json!({"path": "data.a", "eq": {"x": 1}}),
                "filter.eq: expected a string",
            ),
            (
                json!({"path": "data.a", "in": []}),
                "filter.in: expected an array of 1 to 256",
            ),
            (
                json!({"path": "data.a", "in": "eu"}),
                "filter.in: expected an array",
            ),
            (
                json!({"path": "data.a", "in": ["eu", ["x"]]}),
                "filter.in[1]: expected a string",
            ),
            (
                json!({"path": "data.a", "exists": "yes"}),
                "filter.exists: expected true or false",
            ),
            (
                json!({"path": "payload.a", "eq": 1}),
                "filter.path: expected a dotted path starting at data",
            ),
            (
                json!({"path": "", "eq": 1}),
                "filter.path: expected a dotted path",
            ),
            (
                json!({"path": 3, "eq": 1}),
                "filter.path: expected a dotted path",
            ),
            (
                json!({"path": "data..a", "eq": 1}),
                "filter.path: has an empty segment",
            ),
            (
                json!({"path": "type.x", "eq": 1}),
                "filter.path: `type` is a string",
            ),
            (
                json!({"path": "data.a", "eq": "a\u{0}b"}),
                "filter.eq: contains the character \\u0000",
            ),
            (
                json!({"path": "data.a\u{0}", "eq": 1}),
                "filter.path: contains the character \\u0000",
            ),
        ];
        for (f, want) in cases {
            let got = refused(f.clone());
            assert!(got.starts_with(want), "{f}: got `{got}`, want `{want}…`");
        }
    }

    #[test]
    fn absurd_filters_are_bounded() {
        let mut deep = json!({"path": "data.a", "eq": 1});
        for _ in 0..MAX_DEPTH {
            deep = json!({"not": deep});
        }
        assert!(refused(deep).contains("nested too deeply"));
        let mut ok = json!({"path": "data.a", "eq": 1});
        for _ in 0..MAX_DEPTH - 1 {
            ok = json!({"not": ok});
        }
        assert_eq!(refused(ok), "compiled");
        let many: Vec<Value> = (0..MAX_NODES)
            .map(|i| json!({"path": "data.a", "eq": i}))
            .collect();
        assert!(refused(json!({"or": many})).starts_with("filter.or[63]: too many conditions"));
        let long = "x".repeat(MAX_STRING_BYTES + 1);
        assert!(refused(json!({"path": "data.a", "eq": long})).contains("longer than"));
        let in_list: Vec<u32> = (0..=MAX_IN_ITEMS as u32).collect();
        assert!(refused(json!({"path": "data.a", "in": in_list}))
            .starts_with("filter.in: expected an array of 1 to"));
        let path = vec!["data"; MAX_PATH_SEGMENTS + 1].join(".");
        assert!(refused(json!({"path": path, "eq": 1})).contains("segments"));
        let huge: Vec<Value> = (0..40)
            .map(|_| json!({"path": "data.a", "in": vec!["y".repeat(200); 2]}))
            .collect();
        assert!(refused(json!({"or": huge})).contains("bytes of JSON; at most"));
    }

    #[test]
    fn parse_refuses_nul_and_bad_json() {
        assert!(Filter::parse(r#"{"path": "data.a", "eq": "\u0000"}"#)
            .unwrap_err()
            .message
            .contains("\\u0000"));
        assert!(Filter::parse("{")
            .unwrap_err()
            .message
            .contains("not valid JSON"));
        let big = format!(r#"{{"path": "data.a", "eq": "{}"}}"#, "x".repeat(MAX_BYTES));
        assert!(Filter::parse(&big).unwrap_err().message.contains("at most"));
        assert!(Filter::parse(r#"{"path": "data.a", "eq": 1}"#).is_ok());
    }
}
