//! The HTTPS client instant-acme talks to the CA with: the one rustls (ring) of the binary,
//! the platform's roots plus `tls.acme_ca_file` (a private CA, Pebble in tests), and a connect
//! timeout so an unreachable directory fails promptly instead of hanging an attempt.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::AcmeError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The hyper client, plus one check instant-acme leaves out: a directory URL answering with an
/// error status (404 from a mistyped path) is reported as that status, not as a JSON error.
struct AcmeHttp {
    inner: Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    directory: String,
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let is_directory = req.method() == Method::GET && req.uri() == self.directory.as_str();
        let fut = self.inner.request(req);
        Box::pin(async move {
            let rsp = fut
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            if is_directory && !rsp.status().is_success() {
                return Err(instant_acme::Error::Other(
                    format!("the directory URL answered HTTP {}", rsp.status()).into(),
                ));
            }
            Ok(BytesResponse::from(rsp))
        })
    }
}

pub fn http_client(ca_file: &Path, directory: &str) -> Result<Box<dyn HttpClient>, AcmeError> {
    let extra: Vec<CertificateDer<'static>> = if ca_file.as_os_str().is_empty() {
        Vec::new()
    } else {
        CertificateDer::pem_file_iter(ca_file)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| AcmeError::CaFile(format!("{}: {e}", ca_file.display())))?
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| AcmeError::CaFile(format!("{}: {e}", ca_file.display())))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AcmeError::CaFile(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Ok(Box::new(AcmeHttp {
        inner: Client::builder(TokioExecutor::new()).build(https),
        directory: directory.to_string(),
    }))
}
