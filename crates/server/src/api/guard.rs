//! Who may address the server at all, decided from the headers before anything else is read.
//!
//! - **Hosts.** A DNS-rebinding page reaches a loopback server under a hostile name that resolves to
//!   127.0.0.1; its requests carry that name in `Host`. Without API keys only loopback names and the
//!   bound address are served; `--allowed-hosts` adds names (a reverse proxy's). With API keys the
//!   same list applies when it is set.
//! - **Origins.** Browsers attach `Origin` to cross-origin requests (and to every POST and WebSocket
//!   handshake); a page of another origin may *send* requests even when CORS keeps it from reading
//!   the answers, so such requests are refused outright, before the body is read: only the server's
//!   own origin (the page it serves) and `--cors-origins` pass. `Sec-Fetch-Site` catches the
//!   cross-site requests that carry no `Origin` (a no-cors GET, an image tag). Clients that send
//!   neither header (curl, SDKs, servers) are unaffected.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use facerec_core::ErrorCode;

/// Which hosts and origins are served.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    /// Host names served besides the loopback ones, lowercase (`*.example.com` matches subdomains).
    pub allowed_hosts: Vec<String>,
    /// Whether any host is served when `allowed_hosts` is empty (API keys are configured).
    pub any_host_by_default: bool,
    /// The address the server listens on; its IP is always a valid `Host`.
    pub bind: SocketAddr,
    /// Origins of other web pages allowed to call the API (`--cors-origins`).
    pub cors_origins: Vec<String>,
}

impl AccessPolicy {
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let listed = self
            .allowed_hosts
            .iter()
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == *allowed,
            });
        if listed {
            return true;
        }
        if self.allowed_hosts.is_empty() && self.any_host_by_default {
            return true;
        }
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>();
        host == "localhost"
            || host.ends_with(".localhost")
            || ip.is_ok_and(|ip| ip.is_loopback() || ip == self.bind.ip())
    }

    /// `scheme` is how the request reached the server: `http`, or `https` through a TLS proxy.
    fn origin_allowed(&self, origin: &str, host: Option<&str>, scheme: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        if self
            .cors_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
        {
            return true;
        }
        // The server's own origin: the page it served, by the same scheme, host and port.
        match (split_origin(origin), host) {
            (Some((origin_scheme, authority)), Some(host)) => {
                origin_scheme == scheme
                    && same_authority(&authority, scheme, &host.to_ascii_lowercase())
            }
            _ => false,
        }
    }
}

/// `scheme://host[:port]` → (scheme, `host[:port]`), lowercased. `null` and anything else → None.
fn split_origin(origin: &str) -> Option<(&'static str, String)> {
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        _ => return None,
    };
    (!authority.is_empty() && !authority.contains('/'))
        .then(|| (scheme, authority.to_ascii_lowercase()))
}

/// Whether an origin's authority names the same host and port as the request's `Host`, both
/// without a port standing for the default port of the scheme the request came by (behind a TLS
/// proxy, 443).
fn same_authority(origin: &str, scheme: &str, host: &str) -> bool {
    let default_port = if scheme == "https" { "443" } else { "80" };
    let (origin_host, origin_port) = split_port(origin);
    let (host_name, host_port) = split_port(host);
    origin_host == host_name
        && origin_port.unwrap_or(default_port) == host_port.unwrap_or(default_port)
}

/// `name:port`, `[v6]:port`, `name` → (name, port).
fn split_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.split_once("]:") {
            Some((name, port)) => (&authority[..name.len() + 1], Some(port)),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (authority, None),
    }
}

/// The host the client addressed: `Host` (HTTP/1.1), else the URI's authority (HTTP/2).
fn addressed_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
}

/// How the request reached the server: facerec itself speaks plain HTTP; a TLS proxy in front says
/// `X-Forwarded-Proto: https` (a web page cannot set that header on the requests it sends: it is
/// not one a browser lets a page add without a preflight, which the guard refuses).
fn request_scheme(headers: &HeaderMap) -> &'static str {
    let forwarded = header(headers, "x-forwarded-proto")
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    match forwarded {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The middleware: refuses a request addressed to a foreign host name or sent by a foreign page.
pub async fn check_access(
    State(policy): State<Arc<AccessPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let host = addressed_host(&request);
    if let Some(host) = &host {
        let (name, _) = split_port(host);
        if !policy.host_allowed(name) {
            return ApiError::new(
                ErrorCode::ForbiddenHost,
                format!(
                    "this server does not answer to the host name '{name}'; \
                     add it with --allowed-hosts if a proxy serves it under that name"
                ),
            )
            .into_response();
        }
    }
    let headers = request.headers();
    let refused_origin = match header(headers, "origin") {
        Some(origin) => !policy.origin_allowed(origin, host.as_deref(), request_scheme(headers)),
        // No Origin: only a browser's cross-site request that is not a plain navigation (a link the
        // person followed) is refused; non-browser clients send no Sec-Fetch-Site at all.
        None => {
            let cross_site = matches!(
                header(headers, "sec-fetch-site"),
                Some("cross-site" | "same-site")
            );
            let navigation = header(headers, "sec-fetch-mode") == Some("navigate")
                && request.method() == Method::GET;
            cross_site && !navigation
        }
    };
    if refused_origin {
        return ApiError::new(
            ErrorCode::ForbiddenOrigin,
            "requests from other web pages are refused; add the page's origin with --cors-origins \
             to allow it",
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed_hosts: &[&str], any_host_by_default: bool) -> AccessPolicy {
        AccessPolicy {
            allowed_hosts: allowed_hosts.iter().map(|s| s.to_string()).collect(),
            any_host_by_default,
            bind: "127.0.0.1:8000".parse().unwrap(),
            cors_origins: vec!["https://app.example".into()],
        }
    }

    #[test]
    fn loopback_names_are_served_and_others_only_when_listed() {
        let p = policy(&[], false);
        for host in [
            "localhost",
            "LOCALHOST",
            "a.localhost",
            "127.0.0.1",
            "127.3.2.1",
            "[::1]",
        ] {
            assert!(p.host_allowed(host), "{host}");
        }
        for host in ["attacker.example", "localhost.attacker.example", "10.0.0.1"] {
            assert!(!p.host_allowed(host), "{host}");
        }
        let listed = policy(&["face.example", "*.corp.example"], false);
        assert!(listed.host_allowed("face.example"));
        assert!(listed.host_allowed("cam.corp.example"));
        assert!(!listed.host_allowed("corp.example.evil"));
        assert!(policy(&[], true).host_allowed("anything.example"));
        assert!(!policy(&["face.example"], true).host_allowed("anything.example"));
    }

    #[test]
    fn only_the_own_origin_and_listed_origins_pass() {
        let p = policy(&[], false);
        let own = |origin: &str, host: &str| p.origin_allowed(origin, Some(host), "http");
        assert!(own("http://127.0.0.1:8000", "127.0.0.1:8000"));
        assert!(own("http://localhost:8000/", "localhost:8000"));
        // Behind a TLS proxy (X-Forwarded-Proto: https).
        assert!(p.origin_allowed("https://face.example", Some("face.example"), "https"));
        assert!(own("https://app.example", "127.0.0.1:8000"));
        assert!(!own("http://127.0.0.1:9000", "127.0.0.1:8000"));
        assert!(!own("http://evil.example", "127.0.0.1:8000"));
        assert!(!own("null", "127.0.0.1:8000"));
        assert!(!own("http://[::1]:9000", "[::1]:8000"));
        assert!(own("http://[::1]:8000", "[::1]:8000"));
    }

    #[test]
    fn the_scheme_counts_and_a_missing_port_is_the_servers_schemes_default() {
        let p = policy(&[], false);
        // Another scheme is another origin, even on the same host and port.
        assert!(!p.origin_allowed("https://127.0.0.1:8000", Some("127.0.0.1:8000"), "http"));
        // A plain-HTTP server on port 80 addressed without a port is not https://host (port 443).
        assert!(!p.origin_allowed("https://127.0.0.1", Some("127.0.0.1"), "http"));
        assert!(p.origin_allowed("http://127.0.0.1", Some("127.0.0.1:80"), "http"));
        assert!(!p.origin_allowed("http://face.example", Some("face.example"), "https"));
    }
}
