//! Reading the small XML documents S3 exchanges (listings, multipart completion): every
//! element's text with the path of element names leading to it, namespaces dropped.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Every leaf element's text with the local names leading to it from the root, e.g.
/// `(["ListBucketResult", "Contents", "Key"], "a & b")`, in document order; entities
/// decoded. `Err` for malformed XML.
pub fn leaves(xml: &[u8]) -> Result<Vec<(Vec<String>, String)>, String> {
    let mut reader = Reader::from_reader(xml);
    let mut path: Vec<String> = Vec::new();
    // The text of the innermost open element, while it has no child element.
    let mut text: Option<String> = None;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?
        {
            Event::Start(e) => {
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                text = Some(String::new());
            }
            Event::Empty(e) => {
                let mut p = path.clone();
                p.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                out.push((p, String::new()));
                text = None;
            }
            Event::End(_) => {
                if let Some(t) = text.take() {
                    out.push((path.clone(), t));
                }
                path.pop();
            }
            Event::Text(t) => {
                let raw = t.decode().map_err(|e| e.to_string())?;
                let decoded = quick_xml::escape::unescape(&raw).map_err(|e| e.to_string())?;
                if let Some(text) = &mut text {
                    text.push_str(&decoded);
                }
            }
            // `&quot;` and friends arrive apart from the text around them.
            Event::GeneralRef(r) => {
                let entity = format!("&{};", r.decode().map_err(|e| e.to_string())?);
                let decoded = quick_xml::escape::unescape(&entity).map_err(|e| e.to_string())?;
                if let Some(text) = &mut text {
                    text.push_str(&decoded);
                }
            }
            Event::Eof if path.is_empty() => return Ok(out),
            Event::Eof => return Err("unexpected end of the document".into()),
            _ => {}
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_with_paths_and_entities() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>true</IsTruncated>
<Contents><Key>a &amp; b</Key><ETag>&quot;abc&quot;</ETag><Size>10</Size></Contents>
<Contents><Key>c</Key><ETag>"def-2"</ETag><Size>0</Size></Contents></ListBucketResult>"#;
        let got: Vec<(String, String)> = leaves(xml)
            .unwrap()
            .into_iter()
            .map(|(p, t)| (p.join("/"), t))
            .collect();
        let want = [
            ("ListBucketResult/IsTruncated", "true"),
            ("ListBucketResult/Contents/Key", "a & b"),
            ("ListBucketResult/Contents/ETag", "\"abc\""),
            ("ListBucketResult/Contents/Size", "10"),
            ("ListBucketResult/Contents/Key", "c"),
            ("ListBucketResult/Contents/ETag", "\"def-2\""),
            ("ListBucketResult/Contents/Size", "0"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn malformed_xml_is_an_error() {
        assert!(leaves(b"<a><b></a>").is_err());
        assert!(leaves(b"<a><b>x</b>").is_err(), "unclosed");
    }
}
