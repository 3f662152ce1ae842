//! The embedded demo backend: an in-process, filesystem-backed S3 (`s3s-fs`) on
//! `[upstream] endpoint`, seeded with a sample object, so the sidecar can be tried with no
//! external service. Bucket `demo` is anonymously readable (GET/HEAD), like a public
//! bucket; everything else needs a signature with the configured key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

use crate::config::Config;

pub const PUBLIC_BUCKET: &str = "demo";
pub const SAMPLE_KEY: &str = "sample/hello.bin";
const SAMPLE_SIZE: usize = 5 * 1024 * 1024 + 123;

pub struct DemoBackend {
    root: PathBuf,
    access_key_id: String,
    secret_access_key: String,
    /// Bound before the server starts, so a port clash is reported before anything runs.
    listener: Mutex<Option<std::net::TcpListener>>,
}

impl DemoBackend {
    pub fn bind(config: &Config) -> std::io::Result<DemoBackend> {
        let root = config
            .demo
            .root
            .clone()
            .unwrap_or_else(|| PathBuf::from("target/s3torrent-demo"));
        seed(&root)?;
        let endpoint = &config.upstream.endpoint;
        let addr: SocketAddr = format!("{}:{}", endpoint.host, endpoint.port)
            .parse()
            .map_err(|_| {
                std::io::Error::other(format!(
                    "demo backend: [upstream] endpoint host {:?} must be an IP address",
                    endpoint.host
                ))
            })?;
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(DemoBackend {
            root,
            access_key_id: config.upstream.access_key_id.clone(),
            secret_access_key: config.upstream.secret_access_key.expose().to_string(),
            listener: Mutex::new(Some(listener)),
        })
    }

    pub fn banner(config: &Config) -> String {
        let listen = config.server.listen;
        let ak = &config.upstream.access_key_id;
        format!(
            "s3torrent demo: embedded S3 backend on {backend}, sample object s3://{PUBLIC_BUCKET}/{SAMPLE_KEY}\n\
             Try:\n  \
             curl -sS -o hello.torrent 'http://{listen}/{PUBLIC_BUCKET}/{SAMPLE_KEY}?torrent'\n  \
             curl -sSI 'http://{listen}/{PUBLIC_BUCKET}/{SAMPLE_KEY}?torrent'   # Link: <magnet:...>\n  \
             aria2c --seed-time=0 --enable-dht=false hello.torrent   # downloads via the web seed\n  \
             AWS_ACCESS_KEY_ID={ak} AWS_SECRET_ACCESS_KEY=<secret from the config> \\\n    \
             aws --endpoint-url http://{listen} s3api get-object-torrent --bucket {PUBLIC_BUCKET} --key {SAMPLE_KEY} hello.torrent\n",
            backend = config.upstream.endpoint.url(),
        )
    }
}

/// Writes the sample object once: deterministic bytes, several pieces long.
fn seed(root: &Path) -> std::io::Result<()> {
    let path = root.join(PUBLIC_BUCKET).join(SAMPLE_KEY);
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(path.parent().expect("key has a directory"))?;
    let mut state: u32 = 0x5333_7472;
    let data: Vec<u8> = (0..SAMPLE_SIZE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    std::fs::write(path, data)
}

struct DemoAccess;

#[async_trait]
impl S3Access for DemoAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> s3s::S3Result<()> {
        // s3s-fs stores `bucket/key` as a file path under its root, resolving `..`: a key
        // such as `../private/k` would reach into another bucket. S3 allows such keys; this
        // file-backed demo cannot store them safely, so it refuses them.
        if let s3s::path::S3Path::Object { key, .. } = cx.s3_path() {
            let unsafe_key = key.starts_with('/')
                || key.contains('\\')
                || key
                    .split('/')
                    .any(|segment| segment == "." || segment == "..");
            if unsafe_key {
                return Err(s3s::s3_error!(
                    InvalidArgument,
                    "The demo backend does not accept keys with '.' or '..' segments, a leading '/' or a backslash."
                ));
            }
        }
        let public_read = matches!(cx.s3_op().name(), "GetObject" | "HeadObject")
            && cx.s3_path().get_bucket_name() == Some(PUBLIC_BUCKET);
        if cx.credentials().is_some() || public_read {
            Ok(())
        } else {
            Err(s3s::s3_error!(AccessDenied, "Access Denied"))
        }
    }
}

#[async_trait]
impl BackgroundService for DemoBackend {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(listener) = self.listener.lock().expect("not poisoned").take() else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                log::error!("demo backend: {e}");
                return;
            }
        };
        let fs = match s3s_fs::FileSystem::new(&self.root) {
            Ok(fs) => fs,
            Err(e) => {
                log::error!("demo backend: {e:?}");
                return;
            }
        };
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(
            self.access_key_id.clone(),
            self.secret_access_key.clone(),
        ));
        builder.set_access(DemoAccess);
        let service = builder.build();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let service = service.clone();
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        }
    }
}
