//! Bencode (BEP 3) values with canonical encoding: dictionary keys sorted by raw bytes
//! (a `BTreeMap<Vec<u8>, _>` orders them exactly so), integers without leading zeros.
//! The decoder is strict — it accepts only canonical input — so `decode(encode(v)) == v`
//! and `encode(decode(b)) == b` both hold.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    pub fn bytes(b: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(b.into())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => encode_bytes(b, out),
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    encode_bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    pub fn as_dict(&self) -> Option<&BTreeMap<Vec<u8>, Value>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict()?.get(key.as_bytes())
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: &'static str,
}

/// Nesting deeper than this is refused, so hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Decodes one canonical value that spans the whole input.
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    let mut d = Decoder { input, pos: 0 };
    let v = d.value(0)?;
    if d.pos != input.len() {
        return Err(d.err("trailing bytes"));
    }
    Ok(v)
}

/// Decodes one value at the start of `input`, returning it with the bytes it spanned
/// (used to recover the exact `info` bytes for the infohash).
pub fn decode_prefix(input: &[u8]) -> Result<(Value, usize), DecodeError> {
    let mut d = Decoder { input, pos: 0 };
    let v = d.value(0)?;
    Ok((v, d.pos))
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn err(&self, reason: &'static str) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.err("unexpected end"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let n = self.int_until(b'e')?;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.byte_string()?)),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut map = BTreeMap::new();
                let mut last: Option<Vec<u8>> = None;
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(self.err("dictionary key is not a string"));
                    }
                    let key = self.byte_string()?;
                    if last.as_ref().is_some_and(|l| *l >= key) {
                        return Err(self.err("dictionary keys not sorted or duplicated"));
                    }
                    let v = self.value(depth + 1)?;
                    last = Some(key.clone());
                    map.insert(key, v);
                }
                self.pos += 1;
                Ok(Value::Dict(map))
            }
            _ => Err(self.err("unexpected byte")),
        }
    }

    fn int_until(&mut self, end: u8) -> Result<i64, DecodeError> {
        let start = self.pos;
        let len = self.input[start..]
            .iter()
            .position(|&b| b == end)
            .ok_or_else(|| self.err("unterminated integer"))?;
        let digits = &self.input[start..start + len];
        let (neg, body) = match digits.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, digits),
        };
        let leading_zero = body.len() > 1 && body[0] == b'0';
        let negative_zero = neg && body == b"0";
        let digits_only = !body.is_empty() && body.iter().all(u8::is_ascii_digit);
        let canonical = digits_only && !leading_zero && !negative_zero;
        if !canonical {
            return Err(self.err("non-canonical integer"));
        }
        let n = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| self.err("integer out of range"))?;
        self.pos = start + len + 1;
        Ok(n)
    }

    fn byte_string(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.int_until(b':')?;
        let len = usize::try_from(len).map_err(|_| self.err("negative length"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.input.len())
            .ok_or_else(|| self.err("string past end of input"))?;
        let bytes = self.input[self.pos..end].to_vec();
        self.pos = end;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(pairs: &[(&str, Value)]) -> Value {
        Value::Dict(
            pairs
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn encodes_byte_exact() {
        let v = dict(&[
            ("zeta", Value::Int(-3)),
            ("a", Value::List(vec![Value::bytes("spam"), Value::Int(0)])),
            ("Z", Value::bytes("")),
        ]);
        // Keys sort by raw bytes: "Z" (0x5a) < "a" < "zeta".
        assert_eq!(v.encode(), b"d1:Z0:1:al4:spami0ee4:zetai-3ee".to_vec());
    }

    #[test]
    fn round_trips() {
        let v = dict(&[
            ("pieces", Value::bytes(vec![0u8, 255, 10, 58])),
            ("n", Value::Int(i64::MAX)),
            ("m", Value::Int(i64::MIN)),
            ("l", Value::List(vec![dict(&[]), Value::List(vec![])])),
        ]);
        assert_eq!(decode(&v.encode()).unwrap(), v);
    }

    #[test]
    fn rejects_non_canonical_input() {
        for bad in [
            &b"i03e"[..],
            b"i-0e",
            b"ie",
            b"i1",
            b"03:abc",
            b"4:abc",
            b"d1:b0:1:a0:e",
            b"d1:a0:1:a0:e",
            b"di1e0:e",
            b"l",
            b"i1ei2e",
            b"x",
            b"-1:a",
            b"i99999999999999999999e",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn refuses_deep_nesting() {
        let deep = [vec![b'l'; 10_000], vec![b'e'; 10_000]].concat();
        assert!(decode(&deep).is_err());
    }

    #[test]
    fn prefix_reports_span() {
        let (v, n) = decode_prefix(b"d1:ai1eeXYZ").unwrap();
        assert_eq!(n, 8);
        assert_eq!(v.get("a").and_then(Value::as_int), Some(1));
    }
}
