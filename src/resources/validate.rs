//! Parse-don't-validate for user input shared by resources: each function turns
//! a raw value into a typed one or an error message; callers attach the path.

use std::collections::BTreeMap;

use base64::Engine;
use ipnet::IpNet;

pub const NAME_RULE: &str =
    "must start with a lowercase letter, contain only lowercase letters, digits and hyphens, \
not end with a hyphen, and be 2 to 40 characters long";

/// `^[a-z][a-z0-9-]{0,38}[a-z0-9]$`
pub fn name(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = (2..=40).contains(&b.len())
        && b.first().is_some_and(|c| c.is_ascii_lowercase())
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not a valid name: it {NAME_RULE}."))
    }
}

/// An IPv4 or IPv6 CIDR with no host bits set.
pub fn cidr(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s.trim().parse().map_err(|_| {
        format!("{s:?} is not a CIDR block: write an address and a prefix length, e.g. \"203.0.113.0/24\" or \"2001:db8::/32\".")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "{s:?} has host bits set after the /{} prefix: did you mean \"{}\"?",
            net.prefix_len(),
            net.trunc()
        ));
    }
    Ok(net)
}

/// A TCP port, 1..=65535.
pub fn port(n: i64) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{n} is not a port: ports are 1 to 65535."))
}

/// Whole number within an inclusive range.
pub fn whole_in_range(
    n: &crate::tfplugin::value::Number,
    min: u32,
    max: u32,
) -> Result<u32, String> {
    if !n.is_integer() {
        return Err(format!("{n} is not a whole number."));
    }
    n.to_i64()
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| format!("{n} is out of range: must be between {min} and {max}."))
}

const SSH_KEY_TYPES: [&str; 8] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
];

/// An OpenSSH public key line: `TYPE BASE64 [comment]`, whose blob names the same type.
pub fn ssh_public_key(s: &str) -> Result<(), String> {
    let mut parts = s.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err("not an OpenSSH public key: expected \"<type> <base64> [comment]\", e.g. the contents of ~/.ssh/id_ed25519.pub.".into());
    };
    if !SSH_KEY_TYPES.contains(&kind) {
        return Err(format!("unsupported SSH key type {kind:?}: use ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521."));
    }
    if kind == "ssh-dss" {
        return Err(
            "DSA keys are refused by current OpenSSH servers: use an ed25519 or RSA key.".into(),
        );
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| "the key data after the type is not valid base64.".to_string())?;
    // The blob starts with a length-prefixed copy of the type name.
    let inner = raw
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|len| raw.get(4..4 + len));
    if inner != Some(kind.as_bytes()) {
        return Err(format!(
            "the key data does not hold a {kind} key (truncated or mixed-up key)."
        ));
    }
    Ok(())
}

/// Tag keys we reserve for bookkeeping, and cloud-neutral size limits.
pub fn tags(tags: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    for (k, v) in tags {
        if k.starts_with("aienv-") {
            return Err((k.clone(), format!("tag key {k:?} is reserved: keys starting with \"aienv-\" are managed by the provider.")));
        }
        if k.is_empty() || k.chars().count() > 128 {
            return Err((
                k.clone(),
                format!("tag key {k:?} must be 1 to 128 characters."),
            ));
        }
        if v.chars().count() > 256 {
            return Err((
                k.clone(),
                format!("the value of tag {k:?} is longer than 256 characters."),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["ab", "dev-box-1", "a1", &format!("a{}", "b".repeat(39))] {
            assert!(name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            "Dev",
            "1abc",
            "abc-",
            "a_b",
            "",
            &format!("a{}", "b".repeat(40)),
            "dev box",
        ] {
            assert!(name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        assert!(cidr("10.0.0.0/8").is_ok());
        assert!(cidr("2001:db8::/32").is_ok());
        assert!(cidr("0.0.0.0/0").is_ok());
        assert!(cidr("10.0.0.300/8").is_err());
        assert!(cidr("10.0.0.0").is_err());
        let e = cidr("10.0.0.1/24").err().unwrap_or_default();
        assert!(e.contains("10.0.0.0/24"), "{e}");
    }

    #[test]
    fn ports() {
        assert_eq!(port(22), Ok(22));
        assert!(port(0).is_err());
        assert!(port(65536).is_err());
        assert!(port(-1).is_err());
    }

    #[test]
    fn ssh_keys() {
        let good = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host";
        assert!(ssh_public_key(good).is_ok());
        assert!(ssh_public_key("ssh-ed25519").is_err());
        assert!(ssh_public_key("ssh-ed25519 !!!notbase64").is_err());
        // ed25519 label with an RSA blob.
        assert!(ssh_public_key("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ==").is_err());
        assert!(ssh_public_key("hello world").is_err());
    }

    #[test]
    fn reserved_tags() {
        let mut t = BTreeMap::new();
        t.insert("team".to_string(), "ml".to_string());
        assert!(tags(&t).is_ok());
        t.insert("aienv-name".to_string(), "x".to_string());
        assert!(tags(&t).is_err());
    }
}
