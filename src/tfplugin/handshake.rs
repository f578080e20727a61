//! go-plugin handshake and transport: magic cookie, port range, AutoMTLS with a
//! pinned client certificate, TCP_NODELAY on every accepted connection, the
//! GRPCController (Shutdown) and GRPCStdio services, and debug/reattach mode.

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{anyhow, Context as _};
use base64::Engine;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use super::proto::plugin;
use super::proto::tfplugin6::provider_server::ProviderServer;
use super::server::{PluginProvider, ProviderService};

pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// The only plugin protocol version we speak.
pub const PROTOCOL_VERSION: u32 = 6;
/// go-plugin's own handshake format version.
const CORE_PROTOCOL_VERSION: u32 = 1;

pub const NOT_A_PLUGIN_MESSAGE: &str =
    "This binary is a plugin for Terraform. It is not meant to be run \
directly: Terraform starts it when a configuration uses the aienv provider. \
To debug it, run it with --debug and export the TF_REATTACH_PROVIDERS line it prints.";

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `--debug`: no cookie, no TLS, print TF_REATTACH_PROVIDERS, ignore Shutdown.
    pub debug: bool,
    /// Full provider address for reattach, e.g. `registry.terraform.io/aienv/aienv`.
    pub provider_address: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{NOT_A_PLUGIN_MESSAGE}")]
    NotAPlugin,
    #[error("Terraform asked for plugin protocol versions {0:?}; this provider speaks only version 6 (Terraform 1.0 or later).")]
    UnsupportedProtocol(String),
}

/// Check the environment go-plugin sets up before anything else happens.
pub fn check_environment(debug: bool) -> Result<(), HandshakeError> {
    if debug {
        return Ok(());
    }
    match std::env::var(MAGIC_COOKIE_KEY) {
        Ok(v) if v == MAGIC_COOKIE_VALUE => {}
        _ => return Err(HandshakeError::NotAPlugin),
    }
    if let Ok(versions) = std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        let ok = versions
            .split(',')
            .any(|v| v.trim().parse::<u32>() == Ok(PROTOCOL_VERSION));
        if !versions.trim().is_empty() && !ok {
            return Err(HandshakeError::UnsupportedProtocol(versions));
        }
    }
    Ok(())
}

/// Bind 127.0.0.1 within PLUGIN_MIN_PORT..=PLUGIN_MAX_PORT when set, else any port.
async fn bind() -> anyhow::Result<TcpListener> {
    let min = std::env::var("PLUGIN_MIN_PORT")
        .ok()
        .and_then(|v| v.parse::<u16>().ok());
    let max = std::env::var("PLUGIN_MAX_PORT")
        .ok()
        .and_then(|v| v.parse::<u16>().ok());
    if let (Some(min), Some(max)) = (min, max) {
        if min > 0 && min <= max {
            for port in min..=max {
                if let Ok(l) = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
                    return Ok(l);
                }
            }
            return Err(anyhow!(
                "no free port between PLUGIN_MIN_PORT={min} and PLUGIN_MAX_PORT={max}"
            ));
        }
    }
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("binding 127.0.0.1")
}

/// The TLS half of AutoMTLS: our fresh self-signed server certificate and a
/// verifier that accepts exactly the client certificate Terraform gave us.
pub struct AutoMtls {
    pub acceptor: TlsAcceptor,
    /// Our certificate, DER, for the handshake line.
    pub server_cert_der: Vec<u8>,
}

pub fn auto_mtls(client_cert_pem: &str) -> anyhow::Result<AutoMtls> {
    let client_cert = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
        .map_err(|e| anyhow!("PLUGIN_CLIENT_CERT is not a PEM certificate: {e}"))?;
    let key = rcgen::KeyPair::generate().context("generating the server key")?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .context("server certificate parameters")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "HashiCorp");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(30);
    params.not_after = now + time::Duration::days(3650);
    let cert = params
        .self_signed(&key)
        .context("self-signing the server certificate")?;
    let server_cert_der = cert.der().to_vec();
    let key_der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| anyhow!("server key encoding: {e}"))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = PinnedClientCert {
        expected: client_cert.into_owned(),
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![CertificateDer::from(server_cert_der.clone())], key_der)
        .context("TLS server certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(AutoMtls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        server_cert_der,
    })
}

/// Accepts exactly one certificate: the one Terraform generated for this run.
/// Pinning is stronger than chain validation here and works with go-plugin's
/// self-signed CA-flagged P-521 certificate, which webpki would refuse as an
/// end-entity certificate.
#[derive(Debug)]
struct PinnedClientCert {
    expected: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A plain or TLS connection, so one incoming stream serves both modes.
pub enum PluginConn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for PluginConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for PluginConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PluginConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PluginConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PluginConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PluginConn::Plain(s) => Pin::new(s).poll_flush(cx),
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PluginConn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accept connections, set TCP_NODELAY (gRPC's small frames otherwise wait
/// ~40 ms for Nagle + delayed ACK on every RPC), and finish TLS off the accept
/// loop so one slow client cannot block the next.
fn incoming(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
) -> ReceiverStream<Result<PluginConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::warn!(error = %e, "could not set TCP_NODELAY");
            }
            let tx = tx.clone();
            match &tls {
                None => {
                    if tx.send(Ok(PluginConn::Plain(stream))).await.is_err() {
                        return;
                    }
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(s) => {
                                let _ = tx.send(Ok(PluginConn::Tls(Box::new(s)))).await;
                            }
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake with Terraform failed")
                            }
                        }
                    });
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

/// go-plugin's controller: Shutdown asks the plugin to exit cleanly.
struct Controller {
    shutdown: Arc<Notify>,
    debug: bool,
}

#[tonic::async_trait]
impl plugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(
        &self,
        _request: Request<plugin::Empty>,
    ) -> Result<Response<plugin::Empty>, Status> {
        if self.debug {
            tracing::info!("Shutdown ignored in debug mode; stop the provider with Ctrl-C");
        } else {
            tracing::debug!("Shutdown requested by Terraform");
            self.shutdown.notify_one();
        }
        Ok(Response::new(plugin::Empty {}))
    }
}

/// go-plugin's stdio service. We log to stderr directly, so the stream carries
/// nothing and stays open until the client goes away.
struct Stdio;

type StdioStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<plugin::StdioData, Status>> + Send>>;

#[tonic::async_trait]
impl plugin::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = StdioStream;
    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}

/// The line go-plugin reads from our stdout.
pub fn handshake_line(addr: SocketAddr, server_cert_der: Option<&[u8]>) -> String {
    let cert = server_cert_der
        .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
        .unwrap_or_default();
    format!("{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|tcp|{addr}|grpc|{cert}")
}

/// The reattach JSON a user exports to attach Terraform to a debug-mode provider.
pub fn reattach_json(provider_address: &str, addr: SocketAddr) -> String {
    serde_json::json!({
        provider_address: {
            "Protocol": "grpc",
            "ProtocolVersion": PROTOCOL_VERSION,
            "Pid": std::process::id(),
            "Test": true,
            "Addr": { "Network": "tcp", "String": addr.to_string() }
        }
    })
    .to_string()
}

/// Serve the provider until Terraform calls Shutdown (or, in debug mode, until
/// Ctrl-C).
pub async fn serve<P: PluginProvider>(provider: Arc<P>, opts: ServeOptions) -> anyhow::Result<()> {
    check_environment(opts.debug)?;
    let listener = bind().await?;
    let addr = listener.local_addr().context("listener address")?;

    let mtls = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(pem) if !opts.debug && !pem.trim().is_empty() => Some(auto_mtls(&pem)?),
        _ => None,
    };

    let shutdown = Arc::new(Notify::new());
    let service = ProviderService::new(provider);
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(ProviderServer::new(service).max_decoding_message_size(256 * 1024 * 1024))
        .add_service(plugin::grpc_controller_server::GrpcControllerServer::new(
            Controller {
                shutdown: shutdown.clone(),
                debug: opts.debug,
            },
        ))
        .add_service(plugin::grpc_stdio_server::GrpcStdioServer::new(Stdio));

    {
        let mut out = std::io::stdout().lock();
        if opts.debug {
            writeln!(
                out,
                "Provider started. To attach Terraform CLI, set the TF_REATTACH_PROVIDERS environment variable with the following:\n\n\tTF_REATTACH_PROVIDERS='{}'\n",
                reattach_json(&opts.provider_address, addr)
            )?;
        } else {
            writeln!(
                out,
                "{}",
                handshake_line(addr, mtls.as_ref().map(|m| m.server_cert_der.as_slice()))
            )?;
        }
        out.flush()?;
    }
    tracing::debug!(%addr, tls = mtls.is_some(), "plugin server listening");

    // Terraform forwards Ctrl-C to the whole process group; it then asks us to
    // stop via StopProvider/Shutdown, so a SIGINT alone must not kill us mid-apply.
    let debug = opts.debug;
    let stop_signal = {
        let shutdown = shutdown.clone();
        async move {
            loop {
                tokio::select! {
                    _ = shutdown.notified() => return,
                    r = tokio::signal::ctrl_c() => {
                        if r.is_err() || debug {
                            return;
                        }
                        tracing::debug!("interrupt received; waiting for Terraform to stop us");
                    }
                }
            }
        }
    };
    router
        .serve_with_incoming_shutdown(incoming(listener, mtls.map(|m| m.acceptor)), stop_signal)
        .await
        .context("gRPC server")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_line_has_go_plugin_shape() {
        let addr: SocketAddr = "127.0.0.1:4321"
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 4321)));
        assert_eq!(handshake_line(addr, None), "1|6|tcp|127.0.0.1:4321|grpc|");
        let line = handshake_line(addr, Some(&[0xde, 0xad, 0xbe, 0xef, 0x01]));
        // go-plugin decodes with RawStdEncoding: no padding.
        assert_eq!(line, "1|6|tcp|127.0.0.1:4321|grpc|3q2+7wE");
    }

    #[test]
    fn reattach_json_names_the_provider() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 5555));
        let j: serde_json::Value =
            serde_json::from_str(&reattach_json("registry.terraform.io/aienv/aienv", addr))
                .unwrap_or_default();
        let entry = &j["registry.terraform.io/aienv/aienv"];
        assert_eq!(entry["ProtocolVersion"], 6);
        assert_eq!(entry["Addr"]["String"], "127.0.0.1:5555");
    }

    #[test]
    fn auto_mtls_rejects_garbage_client_cert() {
        assert!(auto_mtls("not a pem").is_err());
    }
}
