//! `--box` and `--box-prefix` values: what a guest is granted.

use fdbox_host::{Grant, Name, Permissions};

/// Parse `--box NAME[:PERMS]`. The permissions are after the last `:`, so a
/// box name containing `:` needs explicit permissions (`a:b:all`).
pub fn parse_box(value: &str) -> Result<Grant, String> {
    let (name, perms) = split_perms("--box", value)?;
    let name = Name::new(name).map_err(|e| format!("--box {value:?}: {e}"))?;
    Ok(Grant::one_box(name).with_permissions(perms))
}

/// Parse `--box-prefix PREFIX[:PERMS]`.
pub fn parse_prefix(value: &str) -> Result<Grant, String> {
    let (prefix, perms) = split_perms("--box-prefix", value)?;
    let grant = Grant::prefix(prefix).map_err(|e| format!("--box-prefix {value:?}: {e}"))?;
    Ok(grant.with_permissions(perms))
}

fn split_perms<'a>(flag: &str, value: &'a str) -> Result<(&'a str, Permissions), String> {
    match value.rsplit_once(':') {
        None => Ok((value, Permissions::ALL)),
        Some((name, perms)) => perms.parse().map(|p| (name, p)).map_err(|e| {
            // The permissions first: that is what a short word after ':'
            // usually meant; a name with ':' in it is the rarer case.
            let suggestion = match perms {
                "r" | "ro" | "read" => format!(" (for reading: {name}:get)"),
                "w" | "write" => format!(" (for writing: {name}:put)"),
                "rw" | "wr" | "readwrite" | "read,write" => {
                    format!(" (for both: {name}:put,get)")
                }
                _ => String::new(),
            };
            format!(
                "{flag} {value:?}: {e}{suggestion}; if {value:?} is the whole name, \
                 give its permissions after it: '{value}:all'"
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdbox_host::wasm::grant::Scope;

    #[test]
    fn names_and_permissions() {
        let g = parse_box("state").unwrap();
        assert_eq!(g.scope, Scope::Box(Name::new("state").unwrap()));
        assert_eq!(g.permissions, Permissions::ALL);
        let g = parse_box("a:b:get,put").unwrap();
        assert_eq!(g.scope, Scope::Box(Name::new("a:b").unwrap()));
        assert_eq!(g.permissions.to_string(), "put,get");
        assert_eq!(
            parse_prefix("svc.").unwrap().scope,
            Scope::Prefix("svc.".into())
        );
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        assert!(parse_box("").unwrap_err().contains("empty"));
        assert!(parse_box("a/b").unwrap_err().contains("'/'"));
        assert!(parse_box("a:steal").unwrap_err().contains("\"steal\""));
        assert!(parse_prefix("").unwrap_err().contains("empty"));
        let rw = parse_box("counter:rw").unwrap_err();
        assert!(
            rw.starts_with("--box \"counter:rw\": unknown permission \"rw\""),
            "{rw}"
        );
        assert!(
            rw.contains("create, delete, put, get, seal, unseal"),
            "{rw}"
        );
        assert!(rw.contains("counter:put,get"), "{rw}");
        assert!(rw.contains("'counter:rw:all'"), "{rw}");
        assert!(
            parse_prefix("svc.:x")
                .unwrap_err()
                .starts_with("--box-prefix")
        );
    }
}
