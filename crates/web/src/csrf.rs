//! CSRF protection for forms: a random token in a cookie that must come back in the form
//! (double submit), plus a same-origin check of `Sec-Fetch-Site`/`Origin` where the browser
//! sends them. Cookies are `__Host-` prefixed and `Secure` when served over HTTPS.

use axum::http::{HeaderMap, HeaderValue, header};

pub fn cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-csrf" } else { "csrf" }
}

pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The token for this browser, and the Set-Cookie header if it needs one.
pub fn token(headers: &HeaderMap, secure: bool) -> (String, Option<HeaderValue>) {
    let name = cookie_name(secure);
    if let Some(t) = read_cookie(headers, name).filter(|t| t.len() == 43) {
        return (t.to_owned(), None);
    }
    let t = crypto::random_token(32);
    let attrs = if secure { "; Secure" } else { "" };
    let cookie = format!("{name}={t}; Path=/; HttpOnly; SameSite=Lax{attrs}");
    (t, HeaderValue::from_str(&cookie).ok())
}

/// Whether a form post is genuine: same-origin (where the browser tells) and the token
/// in the form equals the one in the cookie.
pub fn verify(headers: &HeaderMap, secure: bool, form_token: &str, public_url: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let same_host = origin.split_once("://").is_some_and(|(_, h)| h == host);
        if origin != public_url && !same_host {
            return false;
        }
    }
    match read_cookie(headers, cookie_name(secure)) {
        Some(cookie) => {
            !form_token.is_empty()
                && crypto::constant_time_eq(cookie.as_bytes(), form_token.as_bytes())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                *k,
                HeaderValue::from_str(v).unwrap_or_else(|_| unreachable!()),
            );
        }
        h
    }

    #[test]
    fn double_submit() {
        let (t, set) = token(&HeaderMap::new(), false);
        assert!(set.is_some());
        let h = headers(&[("cookie", &format!("csrf={t}")), ("host", "localhost:8080")]);
        assert_eq!(token(&h, false), (t.clone(), None));
        assert!(verify(&h, false, &t, "http://localhost:8080"));
        assert!(!verify(&h, false, "other", "http://localhost:8080"));
        assert!(!verify(
            &HeaderMap::new(),
            false,
            &t,
            "http://localhost:8080"
        ));
        let cross = headers(&[
            ("cookie", &format!("csrf={t}")),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert!(!verify(&cross, false, &t, "http://localhost:8080"));
        let evil = headers(&[
            ("cookie", &format!("csrf={t}")),
            ("origin", "https://evil.example"),
            ("host", "localhost:8080"),
        ]);
        assert!(!verify(&evil, false, &t, "http://localhost:8080"));
    }
}
