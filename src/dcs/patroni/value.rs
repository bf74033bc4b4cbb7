//! Patroni's loosely typed JSON scalars: numbers that may arrive as strings
//! (Kubernetes annotations, hand-edited config), and Python-style booleans.
//! Every reader returns `None`/`false` on anything it does not recognise.

use serde_json::Value;

/// Parses a raw DCS value as JSON, logging (not failing) on garbage.
pub(super) fn parse_json(key: &str, raw: &[u8]) -> Option<Value> {
    match serde_json::from_slice(raw) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(key, %error, "ignoring unparsable Patroni value");
            None
        }
    }
}

/// A non-negative integer given as a JSON number or a numeric string.
pub(super) fn uint(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A signed integer given as a JSON number or a numeric string.
pub(super) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Patroni's `parse_bool`: on/true/yes/1 and off/false/no/0, case-insensitive.
pub(super) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A config switch (`pause`, `failsafe_mode`): `parse_bool(str(value))`, else false.
pub(super) fn flag(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => parse_bool(s) == Some(true),
        Value::Number(n) => parse_bool(&n.to_string()) == Some(true),
        _ => false,
    }
}

/// Python truthiness, except that strings Patroni's `parse_bool` knows are read as
/// booleans (`"false"` is false); other non-empty strings are true.
pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => parse_bool(s).unwrap_or(!s.is_empty()),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A non-empty, trimmed string field.
pub(super) fn text(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A scalar rendered for display: strings verbatim, everything else as JSON (`true`, `3`).
pub(super) fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uint_accepts_numbers_and_numeric_strings() {
        assert_eq!(uint(&json!(67_395_656)), Some(67_395_656));
        assert_eq!(uint(&json!(" 42 ")), Some(42));
        assert_eq!(uint(&json!(-1)), None);
        assert_eq!(uint(&json!("1MB")), None);
        assert_eq!(uint(&json!(1.5)), None);
        assert_eq!(uint(&json!(null)), None);
    }

    #[test]
    fn int_accepts_negative_values() {
        assert_eq!(int(&json!(-1)), Some(-1));
        assert_eq!(int(&json!("0")), Some(0));
        assert_eq!(int(&json!(true)), None);
    }

    #[test]
    fn parse_bool_matches_patroni() {
        for s in ["on", "TRUE", "Yes", "1"] {
            assert_eq!(parse_bool(s), Some(true), "{s}");
        }
        for s in ["off", "False", "NO", "0"] {
            assert_eq!(parse_bool(s), Some(false), "{s}");
        }
        assert_eq!(parse_bool("quorum"), None);
    }

    #[test]
    fn flag_and_truthy_differ_on_unknown_strings() {
        assert!(flag(&json!("on")) && flag(&json!(1)) && flag(&json!(true)));
        assert!(!flag(&json!("maybe")) && !flag(&json!(null)) && !flag(&json!({})));
        assert!(truthy(&json!("maybe")) && truthy(&json!(2)) && truthy(&json!([1])));
        assert!(!truthy(&json!("false")) && !truthy(&json!(0)) && !truthy(&json!("")));
    }

    #[test]
    fn text_and_render() {
        assert_eq!(text(Some(&json!(" pg1 "))), Some("pg1".to_owned()));
        assert_eq!(text(Some(&json!(""))), None);
        assert_eq!(text(Some(&json!(1))), None);
        assert_eq!(render(&json!("x")), "x");
        assert_eq!(render(&json!(true)), "true");
        assert_eq!(render(&json!(-3)), "-3");
    }

    #[test]
    fn parse_json_rejects_garbage() {
        assert!(parse_json("k", b"{not json").is_none());
        assert_eq!(parse_json("k", b" 7 "), Some(json!(7)));
    }
}
