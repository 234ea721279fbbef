//! Rust types as Python type annotations, for `help()`, `inspect.signature`
//! and the `.pyi` stubs a host writes.
//!
//! Argument types are traced through their `Deserialize` implementation
//! (serde-reflection), which also yields the fields of serde structs: those
//! become `TypedDict`s. Return types only promise `Serialize`, which cannot be
//! traced without a value, so they are read from the type's name; a struct
//! named there is typed when it is also an argument type or was described
//! with [`Host::describe_type`](crate::Host::describe_type), and `Any`
//! otherwise.
//!
//! | Rust | Python |
//! |---|---|
//! | `bool` | `bool` |
//! | `i8`…`i64`, `u8`…`u64`, `isize`, `usize` | `int` |
//! | `f32`, `f64` | `float` |
//! | `String`, `&str`, `char` | `str` |
//! | `tether::Bytes`, `serde_bytes::ByteBuf` | `bytes` |
//! | `Vec<u8>` argument | `bytes` (a list of ints is accepted too) |
//! | `Vec<T>`, `VecDeque<T>`, sets, slices | `List[T]` |
//! | `(A, B)` | `Tuple[A, B]` |
//! | `Option<T>` | `Optional[T]` (trailing ones may be left out) |
//! | `HashMap<K, V>`, `BTreeMap<K, V>` | `Dict[str, V]` |
//! | `()` | `None` |
//! | `tether::Value` | `Any` |
//! | serde struct | `TypedDict` of its fields |
//! | enum of unit variants | `Literal["A", "B"]` |
//! | other enums | `Any` |

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde_reflection::{
    ContainerFormat, Format, FormatHolder, Tracer, TracerConfig, VariantFormat,
};

/// Named container formats (structs and enums) found while tracing.
type Registry = BTreeMap<String, ContainerFormat>;

/// What tracing found, in a form that can cross threads: each named type's
/// annotation, and each struct's fields.
#[derive(Debug, Clone, Default)]
pub struct Types {
    /// Rust type name → Python annotation.
    pub(crate) named: BTreeMap<String, String>,
    /// Python struct name → (field, annotation).
    pub(crate) structs: BTreeMap<String, Vec<(String, String)>>,
}

impl Types {
    /// Adds what `other` knows.
    pub(crate) fn extend(&mut self, other: &Types) {
        self.named
            .extend(other.named.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.structs
            .extend(other.structs.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// Traces `T`'s shape and returns its annotation, adding the structs and
/// enums it uses to `types`; `None` when the type cannot be traced (it
/// decides its shape at run time, as `tether::Value` does).
pub(crate) fn trace<T: DeserializeOwned>(types: &mut Types) -> Option<String> {
    let mut tracer = Tracer::new(TracerConfig::default());
    let (mut format, _) = tracer.trace_simple_type::<T>().ok()?;
    format.normalize().ok()?;
    let registry = tracer.registry().ok()?;
    for (name, container) in &registry {
        types.named.insert(
            name.clone(),
            from_format(&Format::TypeName(name.clone()), &registry),
        );
        if let ContainerFormat::Struct(fields) = container {
            types.structs.insert(
                py_name(name),
                fields
                    .iter()
                    .map(|f| (f.name.clone(), from_format(&f.value, &registry)))
                    .collect(),
            );
        }
    }
    Some(from_format(&format, &registry))
}

/// The annotation for a traced format.
fn from_format(format: &Format, registry: &Registry) -> String {
    match format {
        Format::Variable(_) => "Any".into(),
        Format::TypeName(name) => match registry.get(name) {
            Some(ContainerFormat::Struct(_)) => py_name(name),
            Some(ContainerFormat::NewTypeStruct(inner)) => from_format(inner, registry),
            Some(ContainerFormat::TupleStruct(items)) => tuple(items, registry),
            Some(ContainerFormat::UnitStruct) => "None".into(),
            Some(ContainerFormat::Enum(variants)) => enum_annotation(variants),
            None => "Any".into(),
        },
        Format::Unit => "None".into(),
        Format::Bool => "bool".into(),
        Format::I8
        | Format::I16
        | Format::I32
        | Format::I64
        | Format::I128
        | Format::U8
        | Format::U16
        | Format::U32
        | Format::U64
        | Format::U128 => "int".into(),
        Format::F32 | Format::F64 => "float".into(),
        Format::Char | Format::Str => "str".into(),
        Format::Bytes => "bytes".into(),
        Format::Option(inner) => format!("Optional[{}]", from_format(inner, registry)),
        Format::Seq(inner) if **inner == Format::U8 => "bytes".into(),
        Format::Seq(inner) => format!("List[{}]", from_format(inner, registry)),
        Format::Map { value, .. } => format!("Dict[str, {}]", from_format(value, registry)),
        Format::Tuple(items) => tuple(items, registry),
        Format::TupleArray { content, .. } => format!("List[{}]", from_format(content, registry)),
    }
}

fn tuple(items: &[Format], registry: &Registry) -> String {
    if items.is_empty() {
        return "Tuple[()]".into();
    }
    let inner: Vec<String> = items.iter().map(|f| from_format(f, registry)).collect();
    format!("Tuple[{}]", inner.join(", "))
}

fn enum_annotation(variants: &BTreeMap<u32, serde_reflection::Named<VariantFormat>>) -> String {
    if variants
        .values()
        .all(|v| matches!(v.value, VariantFormat::Unit))
    {
        let names: Vec<String> = variants.values().map(|v| format!("{:?}", v.name)).collect();
        format!("Literal[{}]", names.join(", "))
    } else {
        "Any".into()
    }
}

/// The annotation for a type known only by its name (a return type).
pub(crate) fn from_type_name(full: &str, types: &Types) -> String {
    annotate(&short_type_name(full), types)
}

fn annotate(name: &str, registry: &Types) -> String {
    let name = name.trim();
    if let Some(inner) = name.strip_prefix('&') {
        return annotate(inner.trim_start_matches("mut "), registry);
    }
    if let Some(inner) = name.strip_prefix('(').and_then(|n| n.strip_suffix(')')) {
        if inner.trim().is_empty() {
            return "None".into();
        }
        let items: Vec<String> = split_args(inner)
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| annotate(s, registry))
            .collect();
        return format!("Tuple[{}]", items.join(", "));
    }
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        let element = inner.split(';').next().unwrap_or(inner);
        return format!("List[{}]", annotate(element, registry));
    }
    let (base, args) = match name.split_once('<') {
        Some((base, rest)) => (base, split_args(rest.strip_suffix('>').unwrap_or(rest))),
        None => (name, Vec::new()),
    };
    let arg = |i: usize| {
        args.get(i)
            .map_or_else(|| "Any".to_owned(), |a| annotate(a, registry))
    };
    match base {
        "bool" => "bool".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" | "NonZeroU32" | "NonZeroU64" | "NonZeroUsize" => "int".into(),
        "f32" | "f64" => "float".into(),
        "String" | "str" | "char" | "Cow" | "Box<str>" => "str".into(),
        "Bytes" | "BytesMut" | "ByteBuf" | "ByteArray" => "bytes".into(),
        "Value" => "Any".into(),
        "Vec" | "VecDeque" | "HashSet" | "BTreeSet" | "IndexSet" | "LinkedList" => {
            format!("List[{}]", arg(0))
        }
        "Box" | "Rc" | "Arc" => arg(0),
        "Option" => format!("Optional[{}]", arg(0)),
        "Result" => arg(0),
        "HashMap" | "BTreeMap" | "IndexMap" => format!("Dict[str, {}]", arg(1)),
        "Map" => "Dict[str, Any]".into(),
        other => registry
            .named
            .get(other)
            .cloned()
            .unwrap_or_else(|| "Any".into()),
    }
}

/// Splits `A, B<C, D>, E` at the top-level commas.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in s.chars() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            out.push(std::mem::take(&mut current).trim().to_owned());
        } else {
            current.push(c);
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// A struct's name as a Python identifier that cannot clash with the stub's
/// own names.
pub(crate) fn py_name(name: &str) -> String {
    const TAKEN: &[&str] = &[
        "Any",
        "Dict",
        "List",
        "Literal",
        "Optional",
        "Tuple",
        "Type",
        "TypedDict",
        "host",
        "errors",
    ];
    let mut ident: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if TAKEN.contains(&ident.as_str()) || ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert(0, '_');
    }
    ident
}

/// `Name = TypedDict("Name", {"field": type, ...})` for every struct in the
/// registry.
pub(crate) fn typed_dicts(types: &Types) -> String {
    let mut out = String::new();
    for (name, fields) in &types.structs {
        let fields: Vec<String> = fields
            .iter()
            .map(|(field, ann)| format!("{field:?}: {ann}"))
            .collect();
        let _ = writeln!(
            out,
            "{name} = TypedDict({name:?}, {{{}}})",
            fields.join(", ")
        );
    }
    out
}

/// Python's reserved words, which cannot name a parameter or a function a
/// script calls as `host.NAME`.
pub(crate) const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// `alloc::vec::Vec<alloc::string::String>` → `Vec<String>`.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut ident = String::new();
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' || c.is_alphanumeric() {
            ident.push(c);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            ident.clear();
        } else {
            out.push_str(&ident);
            ident.clear();
            out.push(c);
        }
    }
    out.push_str(&ident);
    out
}

/// A serde message about a value that did not fit (`invalid type: string
/// "x", expected i64`) in Python's words: what was expected and what came,
/// as the script's author knows them (`expected int, got str "x"`). A
/// message of another form is returned as it is.
pub(crate) fn pythonic_mismatch(message: &str) -> String {
    let parts = message
        .strip_prefix("invalid type: ")
        .map(|rest| (rest, false))
        .or_else(|| {
            message
                .strip_prefix("invalid value: ")
                .map(|rest| (rest, true))
        });
    if let Some((rest, _value)) = parts {
        if let Some((got, expected)) = rest.rsplit_once(", expected ") {
            return format!(
                "expected {}, got {}",
                python_expected(expected),
                python_got(got)
            );
        }
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|f| f.strip_suffix('`'))
    {
        return format!("missing key {field:?}");
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once("`, expected ") {
            return format!(
                "unexpected key {field:?}, expected {}",
                expected.replace('`', "\"")
            );
        }
    }
    message.to_owned()
}

/// What serde's visitor expected, as a Python type.
fn python_expected(expected: &str) -> String {
    let int_range = |lo: &str, hi: &str| format!("an int from {lo} to {hi}");
    match expected {
        "i8" => int_range("-128", "127"),
        "i16" => int_range("-32768", "32767"),
        "i32" => int_range("-2147483648", "2147483647"),
        "i64" | "isize" | "i128" => "int".into(),
        "u8" => int_range("0", "255"),
        "u16" => int_range("0", "65535"),
        "u32" => int_range("0", "4294967295"),
        "u64" | "usize" | "u128" => "an int of 0 or more".into(),
        "f32" | "f64" => "float".into(),
        "a boolean" => "bool".into(),
        "a string" | "a borrowed string" | "a character" | "a char" => "str".into(),
        "a sequence" => "list".into(),
        "a map" => "dict".into(),
        "unit" => "None".into(),
        "option" => "None or a value".into(),
        "a byte array" | "byte array" | "bytes" => "bytes".into(),
        other => {
            if let Some(name) = other.strip_prefix("struct ") {
                return format!("a {name} (dict)");
            }
            if let Some(n) = other
                .strip_prefix("a tuple of size ")
                .or_else(|| other.strip_prefix("tuple of size "))
            {
                return format!("a list of {n} items");
            }
            if let Some(name) = other.strip_prefix("enum ") {
                return format!("one of {name}'s values");
            }
            other.to_owned()
        }
    }
}

/// What arrived instead, as serde's `Unexpected` shows it, in Python's words.
fn python_got(got: &str) -> String {
    let value = |v: &str| v.trim_matches('`').to_owned();
    if let Some(v) = got.strip_prefix("string ") {
        return format!("str {v}");
    }
    if let Some(v) = got.strip_prefix("integer ") {
        return format!("int {}", value(v));
    }
    if let Some(v) = got.strip_prefix("floating point ") {
        return format!("float {}", value(v));
    }
    if let Some(v) = got.strip_prefix("boolean ") {
        return if value(v) == "true" { "True" } else { "False" }.into();
    }
    if let Some(v) = got.strip_prefix("char ") {
        return format!("str {v}");
    }
    match got {
        "map" => "a dict".into(),
        "sequence" => "a list".into(),
        "unit value" | "Option value" => "None".into(),
        "byte array" => "bytes".into(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Point {
        x: f64,
        #[serde(rename = "y-coord")]
        y: Option<f64>,
        tags: Vec<String>,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    enum Color {
        Red,
        Green,
    }

    fn traced<T: DeserializeOwned>() -> (String, Types) {
        let mut types = Types::default();
        let annotation = trace::<T>(&mut types).expect("traceable");
        (annotation, types)
    }

    #[test]
    fn traced_argument_types() {
        assert_eq!(traced::<i64>().0, "int");
        assert_eq!(traced::<Option<String>>().0, "Optional[str]");
        assert_eq!(traced::<Vec<u8>>().0, "bytes");
        assert_eq!(
            traced::<HashMap<String, Vec<f64>>>().0,
            "Dict[str, List[float]]"
        );
        assert_eq!(traced::<(bool, u8)>().0, "Tuple[bool, int]");
        assert_eq!(traced::<Color>().0, "Literal[\"Red\", \"Green\"]");
        let (annotation, registry) = traced::<Point>();
        assert_eq!(annotation, "Point");
        assert_eq!(
            typed_dicts(&registry),
            "Point = TypedDict(\"Point\", {\"x\": float, \"y-coord\": Optional[float], \"tags\": List[str]})\n"
        );
        assert!(trace::<crate::Value>(&mut Types::default()).is_none());
    }

    #[test]
    fn return_types_from_their_names() {
        let registry = traced::<Point>().1;
        let ann = |t: &str| from_type_name(t, &registry);
        assert_eq!(ann("i64"), "int");
        assert_eq!(ann("()"), "None");
        assert_eq!(ann("alloc::string::String"), "str");
        assert_eq!(
            ann("alloc::vec::Vec<core::option::Option<f64>>"),
            "List[Optional[float]]"
        );
        assert_eq!(
            ann("std::collections::hash::map::HashMap<alloc::string::String, i32>"),
            "Dict[str, int]"
        );
        assert_eq!(ann("(i32, &str)"), "Tuple[int, str]");
        assert_eq!(ann("tether::value::Value"), "Any");
        assert_eq!(ann("bytes::bytes::Bytes"), "bytes");
        assert_eq!(ann("my_crate::Point"), "Point");
        assert_eq!(ann("my_crate::Unknown"), "Any");
        assert_eq!(ann("[u8; 4]"), "List[int]");
    }

    #[test]
    fn serde_mismatches_in_pythons_words() {
        let py = pythonic_mismatch;
        assert_eq!(
            py("invalid type: string \"x\", expected i64"),
            "expected int, got str \"x\""
        );
        assert_eq!(
            py("invalid type: map, expected a string"),
            "expected str, got a dict"
        );
        assert_eq!(
            py("invalid type: sequence, expected struct Row"),
            "expected a Row (dict), got a list"
        );
        assert_eq!(
            py("invalid type: floating point `1.5`, expected u8"),
            "expected an int from 0 to 255, got float 1.5"
        );
        assert_eq!(
            py("invalid value: integer `300`, expected u8"),
            "expected an int from 0 to 255, got int 300"
        );
        assert_eq!(
            py("invalid type: boolean `true`, expected f64"),
            "expected float, got True"
        );
        assert_eq!(
            py("invalid type: unit value, expected a sequence"),
            "expected list, got None"
        );
        assert_eq!(py("missing field `id`"), "missing key \"id\"");
        assert_eq!(
            py("unknown field `idd`, expected `id` or `name`"),
            "unexpected key \"idd\", expected \"id\" or \"name\""
        );
        assert_eq!(py("something else"), "something else");
    }
}
