//! Typed access to the fields of a diffusers JSON configuration, with errors that name the file,
//! the field and the value. diffusers writes these files with Python's `json` module, which
//! spells non-finite floats as bare `NaN`, `Infinity` and `-Infinity` (e.g.
//! `"lambda_min_clipped": -Infinity`); those are accepted wherever a number is expected.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::diffusion::error::{DiffusionError, Result};
use crate::model::ModelError;

/// The bare tokens Python's `json` writes for non-finite floats, with their values.
const NON_FINITE: [(&str, f64); 3] = [
    ("-Infinity", f64::NEG_INFINITY),
    ("Infinity", f64::INFINITY),
    ("NaN", f64::NAN),
];

/// The top-level object of a configuration file and the path it came from.
pub(crate) struct ConfigFields {
    path: PathBuf,
    map: Map<String, Value>,
}

impl ConfigFields {
    /// Parses `text` (the contents of `path`) as a JSON object in Python's dialect.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(&quote_non_finite(text)).map_err(|source| {
            ModelError::ConfigParse {
                path: path.to_path_buf(),
                source,
            }
        })?;
        match value {
            Value::Object(map) => Ok(Self {
                path: path.to_path_buf(),
                map,
            }),
            other => Err(DiffusionError::InvalidConfig {
                path: path.to_path_buf(),
                field: "(top level)".into(),
                reason: format!("expected a JSON object, found {other}"),
            }),
        }
    }

    /// A field's value; absent fields and `null` read as `None` (the class default applies).
    fn get(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// An error saying `field` holds an unsupported `value`.
    pub(crate) fn unsupported(&self, field: &str, value: impl std::fmt::Display) -> DiffusionError {
        DiffusionError::UnsupportedConfig {
            path: self.path.clone(),
            field: field.to_string(),
            value: value.to_string(),
        }
    }

    /// An error saying `field` is malformed.
    pub(crate) fn invalid(&self, field: &str, reason: impl Into<String>) -> DiffusionError {
        DiffusionError::InvalidConfig {
            path: self.path.clone(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// A boolean field, `default` when absent.
    pub(crate) fn bool_or(&self, field: &str, default: bool) -> Result<bool> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => {
                Err(self.invalid(field, format!("expected true or false, found {other}")))
            }
        }
    }

    /// A non-negative integer field, `default` when absent.
    pub(crate) fn usize_or(&self, field: &str, default: usize) -> Result<usize> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    self.invalid(field, format!("expected a non-negative integer, found {v}"))
                }),
        }
    }

    /// A number field (non-finite spellings accepted), `default` when absent.
    pub(crate) fn f64_or(&self, field: &str, default: f64) -> Result<f64> {
        Ok(self.opt_f64(field)?.unwrap_or(default))
    }

    /// An optional number field.
    pub(crate) fn opt_f64(&self, field: &str) -> Result<Option<f64>> {
        self.get(field)
            .map(|v| {
                number(v)
                    .ok_or_else(|| self.invalid(field, format!("expected a number, found {v}")))
            })
            .transpose()
    }

    /// An optional list of numbers.
    pub(crate) fn opt_f64_list(&self, field: &str) -> Result<Option<Vec<f64>>> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        let items = value.as_array().ok_or_else(|| {
            self.invalid(field, format!("expected a list of numbers, found {value}"))
        })?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                number(v)
                    .ok_or_else(|| self.invalid(field, format!("item {i} is not a number: {v}")))
            })
            .collect::<Result<Vec<f64>>>()
            .map(Some)
    }

    /// A string field, `None` when absent.
    pub(crate) fn opt_str(&self, field: &str) -> Result<Option<&str>> {
        self.get(field)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.invalid(field, format!("expected a string, found {v}")))
            })
            .transpose()
    }

    /// A string field naming one of `options`, `default` when absent; any other string is an
    /// [`DiffusionError::UnsupportedConfig`].
    pub(crate) fn choice<E: Copy>(
        &self,
        field: &str,
        default: E,
        options: &[(&str, E)],
    ) -> Result<E> {
        let Some(name) = self.opt_str(field)? else {
            return Ok(default);
        };
        options
            .iter()
            .find(|(option, _)| *option == name)
            .map(|(_, value)| *value)
            .ok_or_else(|| self.unsupported(field, format!("{name:?}")))
    }

    /// Fails with [`DiffusionError::UnsupportedConfig`] when the boolean `field` is present and
    /// not `supported` (a feature of the diffusers class this implementation leaves out).
    pub(crate) fn require_bool(&self, field: &str, supported: bool) -> Result<()> {
        let value = self.bool_or(field, supported)?;
        if value == supported {
            Ok(())
        } else {
            Err(self.unsupported(field, value))
        }
    }
}

/// A JSON number, or one of Python's non-finite spellings (quoted by [`quote_non_finite`]).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => NON_FINITE.iter().find(|(t, _)| t == s).map(|(_, v)| *v),
        _ => None,
    }
}

/// Rewrites Python's bare `NaN` / `Infinity` / `-Infinity` tokens outside strings as quoted
/// strings, turning Python's JSON dialect into standard JSON. Strings are copied untouched.
fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    let mut in_string = false;
    let mut escaped = false;
    'scan: while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else {
            for (token, _) in NON_FINITE {
                if let Some(after) = rest.strip_prefix(token) {
                    out.push('"');
                    out.push_str(token);
                    out.push('"');
                    rest = after;
                    continue 'scan;
                }
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> ConfigFields {
        ConfigFields::parse(text, Path::new("dir/scheduler_config.json")).unwrap()
    }

    #[test]
    fn python_non_finite_floats_are_read() {
        let f = fields(r#"{"a": -Infinity, "b": Infinity, "c": NaN, "s": "NaN -Infinity \" x"}"#);
        assert_eq!(f.f64_or("a", 0.0).unwrap(), f64::NEG_INFINITY);
        assert_eq!(f.f64_or("b", 0.0).unwrap(), f64::INFINITY);
        assert!(f.f64_or("c", 0.0).unwrap().is_nan());
        assert_eq!(f.opt_str("s").unwrap(), Some("NaN -Infinity \" x"));
    }

    #[test]
    fn absent_and_null_fields_take_the_default() {
        let f = fields(r#"{"x": null}"#);
        assert_eq!(f.f64_or("x", 2.5).unwrap(), 2.5);
        assert_eq!(f.usize_or("y", 7).unwrap(), 7);
        assert!(f.opt_f64_list("x").unwrap().is_none());
    }

    #[test]
    fn unknown_choice_names_file_field_and_value() {
        let f = fields(r#"{"beta_schedule": "sigmoid"}"#);
        let err = f
            .choice("beta_schedule", 0u8, &[("linear", 1)])
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("dir/scheduler_config.json"), "{text}");
        assert!(text.contains("beta_schedule"), "{text}");
        assert!(text.contains("sigmoid"), "{text}");
    }

    #[test]
    fn wrong_types_are_invalid_config() {
        let f = fields(r#"{"n": -3, "b": "yes", "l": [1, "x"]}"#);
        assert!(matches!(
            f.usize_or("n", 0),
            Err(DiffusionError::InvalidConfig { .. })
        ));
        assert!(matches!(
            f.bool_or("b", false),
            Err(DiffusionError::InvalidConfig { .. })
        ));
        assert!(matches!(
            f.opt_f64_list("l"),
            Err(DiffusionError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn malformed_json_is_a_parse_error_naming_the_file() {
        let err = ConfigFields::parse("{", Path::new("s.json")).err().unwrap();
        assert!(matches!(
            err,
            DiffusionError::Model(ModelError::ConfigParse { .. })
        ));
        assert!(err.to_string().contains("s.json"));
    }
}
