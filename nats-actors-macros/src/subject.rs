//! Subject templates: `orders.{region}.updated` with literal tokens, `*`, `>` and named
//! parameters, checked at compile time and turned into the subject to subscribe to.

/// A checked subject template.
pub struct Template {
    /// The subject to subscribe to: parameters replaced by `*`.
    pub subscribe: String,
    /// Named parameters and their token index.
    pub params: Vec<(String, usize)>,
}

/// Parses and checks a template; the error says what is wrong and how to fix it.
pub fn parse(template: &str) -> Result<Template, String> {
    if template.is_empty() {
        return Err("empty subject; give a subject such as \"orders.created\"".into());
    }
    if let Some(c) = template
        .chars()
        .find(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "subject \"{template}\" contains whitespace or a control character ({c:?}); subjects are dot-separated tokens without spaces"
        ));
    }
    let tokens: Vec<&str> = template.split('.').collect();
    let mut subscribe = Vec::with_capacity(tokens.len());
    let mut params: Vec<(String, usize)> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(format!(
                "subject \"{template}\" has an empty token (at position {}); remove the extra `.`",
                i + 1
            ));
        }
        if *token == ">" {
            if i + 1 != tokens.len() {
                return Err(format!(
                    "in subject \"{template}\", `>` must be the last token; use `*` to match one token in the middle"
                ));
            }
        } else if token.contains('>') || (token.contains('*') && *token != "*") {
            return Err(format!(
                "in subject \"{template}\", the token `{token}` mixes a wildcard with other characters; `*` and `>` must be whole tokens"
            ));
        }
        if token.contains('{') || token.contains('}') {
            let name = token
                .strip_prefix('{')
                .and_then(|t| t.strip_suffix('}'))
                .filter(|n| !n.contains('{') && !n.contains('}'))
                .ok_or_else(|| {
                    format!(
                        "in subject \"{template}\", the token `{token}` has unbalanced or partial braces; a parameter is a whole token such as `{{region}}`"
                    )
                })?;
            if !is_ident(name) {
                return Err(format!(
                    "in subject \"{template}\", `{{{name}}}` is not a valid parameter name; use an identifier such as `{{region}}`"
                ));
            }
            if params.iter().any(|(n, _)| n == name) {
                return Err(format!(
                    "in subject \"{template}\", the parameter `{{{name}}}` appears twice; give each parameter a distinct name"
                ));
            }
            params.push((name.to_string(), i));
            subscribe.push("*");
        } else {
            subscribe.push(token);
        }
    }
    Ok(Template {
        subscribe: subscribe.join("."),
        params,
    })
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parameters_become_wildcards() {
        let t = parse("orders.{region}.{id}.>").unwrap();
        assert_eq!(t.subscribe, "orders.*.*.>");
        assert_eq!(t.params, vec![("region".into(), 1), ("id".into(), 2)]);
    }

    #[test]
    fn rejects_bad_subjects() {
        for bad in [
            "",
            "a..b",
            "a b",
            "a.>.b",
            "a.b*",
            "a.{x",
            "a.{x}{y}",
            "a.{1x}",
            "a.{x}.{x}",
            ".a",
            "a.",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in ["a", "a.*.b", "a.>", ">", "a.{x}.b", "_INBOX.x"] {
            assert!(parse(good).is_ok(), "{good:?} should be accepted");
        }
    }
}
