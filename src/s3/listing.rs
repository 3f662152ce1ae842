//! ListObjectsV2, page by page: as the sidecar (`warm`, the store's records), or as a
//! caller (a directory torrent: may they list the prefix?).

use crate::s3::upstream::{Identity, Purpose, Upstream};
use crate::s3::uri::encode;
use crate::s3::xml::leaves;
use crate::s3::S3Error;

/// One object as the listing names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub objects: Vec<Listed>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// Listing bodies are at most 1000 keys of ≤ 1 KiB each, plus their metadata.
const PAGE_LIMIT: usize = 8 << 20;

/// One page as the sidecar; a refusal says what failed.
pub async fn list_page(
    upstream: &Upstream,
    bucket: &str,
    prefix: &str,
    token: Option<&str>,
    page_size: u16,
) -> Result<Page, S3Error> {
    let asked = Asked {
        identity: &Identity::Sidecar,
        headers: &[],
        bucket,
        prefix,
    };
    list_page_as(upstream, &asked, token, page_size)
        .await
        .map_err(|e| match e.status {
            400..=499 => S3Error::invalid_request(format!(
                "listing s3://{bucket}/{prefix} failed: {} {} {}",
                e.status,
                e.code.as_str(),
                e.message
            )),
            _ => e,
        })
}

/// What is listed, and as whom.
pub struct Asked<'a> {
    pub identity: &'a Identity<'a>,
    /// Headers that travel with it (a caller's request-payer, their address).
    pub headers: &'a [(&'a str, &'a str)],
    pub bucket: &'a str,
    pub prefix: &'a str,
}

/// One page as `asked.identity`: the backend's refusal is passed on as it gave it.
pub async fn list_page_as(
    upstream: &Upstream,
    asked: &Asked<'_>,
    token: Option<&str>,
    page_size: u16,
) -> Result<Page, S3Error> {
    let (bucket, prefix) = (asked.bucket, asked.prefix);
    let mut path = format!(
        "/{}?list-type=2&max-keys={page_size}&prefix={}",
        encode(bucket),
        encode(prefix)
    );
    if let Some(t) = token {
        path = format!("{path}&continuation-token={}", encode(t));
    }
    let response = upstream
        .call(
            Purpose::Lookup,
            "GET",
            &path,
            asked.identity,
            asked.headers,
            None,
        )
        .await?;
    let status = response.status();
    let body = response.small_body(PAGE_LIMIT).await;
    if status != 200 {
        return Err(S3Error::backend_refusal(status, &body));
    }
    parse_page(&body).map_err(|e| S3Error::upstream_broke(format!("unreadable listing: {e}")))
}

pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let mut page = Page::default();
    let mut truncated = false;
    // One `<Contents>` at a time: its fields in any order, each once.
    let mut current: (Option<String>, Option<u64>, Option<String>) = (None, None, None);
    let mut flush = |c: &mut (Option<String>, Option<u64>, Option<String>)| match c {
        (None, None, None) => Ok(()),
        (Some(_), Some(_), _) => {
            let (key, size, etag) = std::mem::take(c);
            let (key, size) = (key.unwrap_or_default(), size.unwrap_or_default());
            let etag = etag.unwrap_or_default();
            page.objects.push(Listed { key, size, etag });
            Ok(())
        }
        _ => Err("a listed object without its Key or Size".to_string()),
    };
    for (path, text) in leaves(body)? {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        if !matches!(path[..], [_, "Contents", _]) {
            flush(&mut current)?;
        }
        match path[..] {
            [_, "IsTruncated"] => truncated = text == "true",
            [_, "NextContinuationToken"] => page.next = Some(text),
            [_, "Contents", field] => {
                // A field seen twice starts the next object.
                let seen = match field {
                    "Key" => current.0.is_some(),
                    "Size" => current.1.is_some(),
                    "ETag" => current.2.is_some(),
                    _ => false,
                };
                if seen {
                    flush(&mut current)?;
                }
                match field {
                    "Key" => current.0 = Some(text),
                    "Size" => {
                        current.1 = Some(text.parse().map_err(|_| format!("bad Size {text:?}"))?)
                    }
                    "ETag" => current.2 = Some(text),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    flush(&mut current)?;
    if !truncated {
        page.next = None;
    } else if page.next.is_none() {
        return Err("a truncated listing without NextContinuationToken".into());
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_their_continuation() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix>
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
<Contents><Key>p/a &amp; b</Key><LastModified>2026-11-23T02:15:43.000Z</LastModified><ETag>&quot;x&quot;</ETag><Size>10</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>p/c</Key><ETag>"y"</ETag><Size>0</Size></Contents>
<NextContinuationToken>tok+/=</NextContinuationToken></ListBucketResult>"#;
        let page = parse_page(xml).unwrap();
        assert_eq!(
            page.objects,
            vec![
                Listed {
                    key: "p/a & b".into(),
                    size: 10,
                    etag: "\"x\"".into(),
                },
                Listed {
                    key: "p/c".into(),
                    size: 0,
                    etag: "\"y\"".into(),
                },
            ]
        );
        assert_eq!(page.next.as_deref(), Some("tok+/="));
        let last = br#"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        assert_eq!(parse_page(last).unwrap(), Page::default());
        let broken = br#"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"#;
        assert!(parse_page(broken).is_err());
    }
}
