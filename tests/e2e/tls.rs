//! TLS for the tests: a CA and a certificate it signed (made with the
//! `openssl` command), and a TLS-terminating proxy in front of a plain TCP
//! service (a Kafka broker, an OTLP collector).

use std::path::{Path, PathBuf};
use std::pin::Pin;

use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::net::{TcpListener, TcpStream};

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command (install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate it signed for 127.0.0.1, as PEM files named
/// `<name>-ca.pem`, `<name>.pem`, `<name>.key` in `dir`.
pub fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let cert = format!("{name}.pem");
    let ext = format!("{name}.ext");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (dir.join(ca), dir.join(cert), dir.join(key))
}

/// Terminates TLS on `port` and forwards each connection to `upstream`.
pub async fn tls_proxy(
    port: u16,
    cert: &Path,
    key: &Path,
    upstream: String,
) -> tokio::task::JoinHandle<()> {
    let mut acceptor =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).expect("acceptor");
    acceptor
        .set_private_key_file(key, SslFiletype::PEM)
        .expect("key");
    acceptor.set_certificate_chain_file(cert).expect("cert");
    let acceptor = acceptor.build();
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("proxy port");
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let ssl = Ssl::new(acceptor.context()).expect("ssl");
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, client) else {
                    return;
                };
                if Pin::new(&mut tls).accept().await.is_err() {
                    return;
                }
                let Ok(mut broker) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            });
        }
    })
}
