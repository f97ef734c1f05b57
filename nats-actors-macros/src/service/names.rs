//! Checks of service and endpoint names and of service versions (ADR-32).

use syn::LitStr;

/// A service or endpoint name: `[A-Za-z0-9_-]+`.
pub fn check_name(lit: &LitStr, what: &str) -> syn::Result<String> {
    let v = lit.value();
    if v.is_empty()
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "invalid {what} name \"{v}\": a name has only letters A-Z a-z, digits, `_` and `-` (ADR-32), e.g. \"user-accounts\""
            ),
        ));
    }
    Ok(v)
}

/// A service version: SemVer 2.0 (`MAJOR.MINOR.PATCH`, optional `-pre` and `+build`).
pub fn check_version(lit: &LitStr) -> syn::Result<String> {
    let v = lit.value();
    semver::Version::parse(&v).map_err(|e| {
        syn::Error::new(
            lit.span(),
            format!(
                "invalid service version \"{v}\": {e}; a version is SemVer, e.g. \"1.2.0\" or \"2.0.0-beta.1\""
            ),
        )
    })?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> LitStr {
        LitStr::new(s, proc_macro2::Span::call_site())
    }

    #[test]
    fn names() {
        for good in ["users", "user-accounts", "a_b", "X9"] {
            assert!(check_name(&lit(good), "service").is_ok(), "{good}");
        }
        for bad in ["", "a.b", "a b", "ü", "a*"] {
            assert!(check_name(&lit(bad), "service").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions() {
        for good in ["1.2.0", "0.0.1", "2.0.0-beta.1", "1.0.0+build.7"] {
            assert!(check_version(&lit(good)).is_ok(), "{good}");
        }
        for bad in ["", "1", "1.2", "01.2.3", "1.2.3.4", "v1.2.3", "1.2.3-"] {
            assert!(check_version(&lit(bad)).is_err(), "{bad:?}");
        }
    }
}
