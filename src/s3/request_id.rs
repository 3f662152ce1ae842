//! Per-request ids in the shape S3 uses (16 upper-case hex digits), on every response.

use rand::Rng;

pub fn new_request_id() -> String {
    format!("{:016X}", rand::thread_rng().gen::<u64>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_16_hex_and_distinct() {
        let a = super::new_request_id();
        let b = super::new_request_id();
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
