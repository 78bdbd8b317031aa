//! `--box` and `--box-prefix` values: what a guest is granted.

use fdbox_host::{Grant, Name, Permissions};

/// Parse `--box NAME[:PERMS]`. The permissions are after the last `:`, so a
/// box name containing `:` needs explicit permissions (`a:b:all`).
pub fn parse_box(value: &str) -> Result<Grant, String> {
    let (name, perms) = split_perms(value)?;
    let name = Name::new(name).map_err(|e| format!("--box {value:?}: {e}"))?;
    Ok(Grant::one_box(name).with_permissions(perms))
}

/// Parse `--box-prefix PREFIX[:PERMS]`.
pub fn parse_prefix(value: &str) -> Result<Grant, String> {
    let (prefix, perms) = split_perms(value)?;
    let grant = Grant::prefix(prefix).map_err(|e| format!("--box-prefix {value:?}: {e}"))?;
    Ok(grant.with_permissions(perms))
}

fn split_perms(value: &str) -> Result<(&str, Permissions), String> {
    match value.rsplit_once(':') {
        None => Ok((value, Permissions::ALL)),
        Some((name, perms)) => perms.parse().map(|p| (name, p)).map_err(|e| {
            format!("{value:?}: {e} (a name that contains ':' needs explicit permissions, e.g. '{value}:all')")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdbox_host::grant::Scope;

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
    }
}
