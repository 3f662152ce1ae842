//! ListObjectsV2, page by page, as the sidecar.

use crate::s3::upstream::{Identity, Purpose, Upstream};
use crate::s3::uri::encode;
use crate::s3::xml::leaves;
use crate::s3::S3Error;

/// One object as the listing names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub objects: Vec<Listed>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// Listing bodies are at most 1000 keys of ≤ 1 KiB each, plus their metadata.
const PAGE_LIMIT: usize = 8 << 20;

pub async fn list_page(
    upstream: &Upstream,
    bucket: &str,
    prefix: &str,
    token: Option<&str>,
    page_size: u16,
) -> Result<Page, S3Error> {
    let mut path = format!(
        "/{}?list-type=2&max-keys={page_size}&prefix={}",
        encode(bucket),
        encode(prefix)
    );
    if let Some(t) = token {
        path = format!("{path}&continuation-token={}", encode(t));
    }
    let response = upstream
        .call(Purpose::Lookup, "GET", &path, &Identity::Sidecar, &[], None)
        .await?;
    let status = response.status();
    let body = response.small_body(PAGE_LIMIT).await;
    if status != 200 {
        let detail = crate::s3::error::parse_upstream_error(&body);
        let (code, message) = detail.unwrap_or_default();
        return Err(S3Error::invalid_request(format!(
            "listing s3://{bucket}/{prefix} failed: {status} {code} {message}"
        )));
    }
    parse_page(&body).map_err(|e| S3Error::upstream_broke(format!("unreadable listing: {e}")))
}

pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let mut page = Page::default();
    let mut truncated = false;
    let mut key: Option<String> = None;
    for (path, text) in leaves(body)? {
        match path.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [_, "IsTruncated"] => truncated = text == "true",
            [_, "NextContinuationToken"] => page.next = Some(text),
            [_, "Contents", "Key"] => key = Some(text),
            [_, "Contents", "Size"] => {
                let size = text.parse().map_err(|_| format!("bad Size {text:?}"))?;
                let key = key.take().ok_or("a Size before its Key")?;
                page.objects.push(Listed { key, size });
            }
            _ => {}
        }
    }
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
                    size: 10
                },
                Listed {
                    key: "p/c".into(),
                    size: 0
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
