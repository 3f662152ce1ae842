//! The admin listener, separate from S3 traffic: `/healthz` (the process is serving).

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

pub struct AdminApp;

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let (status, body) = match session.req_header().uri.path() {
            "/healthz" => (200, b"ok\n".to_vec()),
            _ => (404, b"not found\n".to_vec()),
        };
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .header("content-length", body.len())
            .body(body)
            .expect("static response parts are valid")
    }
}
