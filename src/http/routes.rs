//! Which answer each request gets. Kept free of I/O so every route is unit-tested.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Response, StatusCode, Uri};

use super::Kind;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::tls::TlsService;

/// What a request may look at.
pub struct Context<'a> {
    pub config: &'a Config,
    pub metrics: &'a Metrics,
    pub tls: &'a TlsService,
    /// Extra Prometheus text appended to `/metrics` (the inbound verdict counters).
    pub extra_metrics: Option<String>,
}

const ACME_PREFIX: &str = "/.well-known/acme-challenge/";
const AUTOCONFIG_PATHS: [&str; 2] = [
    "/.well-known/autoconfig/mail/config-v1.1.xml",
    "/mail/config-v1.1.xml",
];
const MTA_STS_PATH: &str = "/.well-known/mta-sts.txt";
const METRICS_PATH: &str = "/metrics";

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn not_found() -> Response<Full<Bytes>> {
    respond(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "not found\n".into(),
    )
}

fn no_store(mut r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The answer to one request.
pub fn route(ctx: &Context<'_>, kind: Kind, method: &Method, uri: &Uri) -> Response<Full<Bytes>> {
    // Everything here is read-only. (hyper drops the body of a HEAD answer itself.)
    if method != Method::GET && method != Method::HEAD {
        let mut r = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n".into(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = uri.path();
    if kind == Kind::Metrics {
        return if path == METRICS_PATH {
            let served = crate::tls::CertInfo::of(&ctx.tls.resolver().current()).map(|c| {
                crate::metrics::ServedCert {
                    stand_in: c.self_signed
                        && ctx.config.tls.source == crate::config::TlsSource::Acme,
                    self_signed: c.self_signed,
                    not_after: c.not_after,
                    names: c.names,
                }
            });
            no_store(respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                ctx.metrics.render_prometheus(served.as_ref())
                    + ctx.extra_metrics.as_deref().unwrap_or(""),
            ))
        } else {
            not_found()
        };
    }
    if let Some(token) = path.strip_prefix(ACME_PREFIX) {
        // RFC 8555 §8.3: the token is base64url; anything else cannot be one of ours.
        let valid = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return match valid.then(|| ctx.tls.http01_response(token)).flatten() {
            Some(key_authorization) => {
                no_store(respond(StatusCode::OK, "text/plain", key_authorization))
            }
            None => not_found(),
        };
    }
    if AUTOCONFIG_PATHS.contains(&path) {
        let email = uri.query().and_then(|q| query_param(q, "emailaddress"));
        return respond(
            StatusCode::OK,
            "text/xml; charset=utf-8",
            super::render_autoconfig(ctx.config, email.as_deref()),
        );
    }
    if path == MTA_STS_PATH {
        return respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            super::mta_sts::policy(ctx.config),
        );
    }
    not_found()
}

/// The value of `name` in a URL query string, percent- and `+`-decoded; None when absent or
/// not UTF-8.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name)
            .then(|| percent_decode(v))
            .flatten()
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b'%' => return None,
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn with_ctx(f: impl FnOnce(&Context<'_>)) {
        let d = tempfile::tempdir().unwrap();
        let c = Config::parse(
            &format!(
                "domain='example.com'\nhostname='mail.example.com'\ndata_dir='{}'\n[tls]\nsource='self-signed'\n[http]\nmta_sts_mode='enforce'",
                d.path().display()
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        let tls = TlsService::start(&c).unwrap();
        let m = Metrics::default();
        f(&Context {
            config: &c,
            metrics: &m,
            tls: &tls,
            extra_metrics: Some("postern_inbound_test_total 1\n".into()),
        })
    }

    fn body(r: Response<Full<Bytes>>) -> String {
        use http_body_util::BodyExt;
        let b = block_on(r.into_body().collect()).unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    /// Poll a future that is ready at once (Full bodies never wait).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn get(ctx: &Context<'_>, kind: Kind, uri: &str) -> Response<Full<Bytes>> {
        route(ctx, kind, &Method::GET, &uri.parse().unwrap())
    }

    #[test]
    fn acme_token_route() {
        with_ctx(|ctx| {
            assert_eq!(
                get(ctx, Kind::Http, "/.well-known/acme-challenge/tok_1").status(),
                404
            );
            ctx.tls.set_http01("tok_1", Some("tok_1.thumb".into()));
            let r = get(ctx, Kind::Http, "/.well-known/acme-challenge/tok_1");
            assert_eq!(r.status(), 200);
            assert_eq!(body(r), "tok_1.thumb");
            assert_eq!(
                get(ctx, Kind::Http, "/.well-known/acme-challenge/tok%2e1").status(),
                404
            );
            ctx.tls.set_http01("tok_1", None);
            assert_eq!(
                get(ctx, Kind::Https, "/.well-known/acme-challenge/tok_1").status(),
                404
            );
        })
    }

    #[test]
    fn policy_autoconfig_and_unknown() {
        with_ctx(|ctx| {
            let r = get(ctx, Kind::Https, "/.well-known/mta-sts.txt");
            assert_eq!(r.status(), 200);
            assert!(body(r).contains("mode: enforce\r\n"));
            let r = get(
                ctx,
                Kind::Http,
                "/mail/config-v1.1.xml?emailaddress=joe%40example.com",
            );
            assert_eq!(r.status(), 200);
            assert!(body(r).contains("<username>joe@example.com</username>"));
            assert_eq!(get(ctx, Kind::Http, "/metrics").status(), 404);
            assert_eq!(get(ctx, Kind::Http, "/").status(), 404);
            let r = route(ctx, Kind::Http, &Method::POST, &"/".parse().unwrap());
            assert_eq!(r.status(), 405);
        })
    }

    #[test]
    fn metrics_only_on_metrics_listener() {
        with_ctx(|ctx| {
            Metrics::inc(&ctx.metrics.messages_received);
            let r = get(ctx, Kind::Metrics, "/metrics");
            assert_eq!(r.status(), 200);
            let b = body(r);
            assert!(b.contains("postern_messages_received_total 1\n"), "{b}");
            assert!(b.contains("postern_certificate_expiry_timestamp_seconds "));
            assert!(b.ends_with("postern_inbound_test_total 1\n"), "{b}");
            assert_eq!(
                get(ctx, Kind::Metrics, "/.well-known/mta-sts.txt").status(),
                404
            );
        })
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            query_param("a=1&emailaddress=x%40y.z", "emailaddress").as_deref(),
            Some("x@y.z")
        );
        assert_eq!(query_param("emailaddress=%4", "emailaddress"), None);
        assert_eq!(query_param("b=%zz", "emailaddress"), None);
        assert_eq!(query_param("e=a+b", "e").as_deref(), Some("a b"));
    }
}
