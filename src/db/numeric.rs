//! PostgreSQL `numeric` in its binary wire form, to and from exact decimal strings.
//!
//! Wire form: `ndigits`, `weight`, `sign`, `dscale` (all 16-bit) then `ndigits` base-10000
//! digits; digit `i` is worth 10000^(weight - i). No floating point is involved anywhere, so a
//! 40-digit value or `0.004` arrives exactly as the server holds it.

const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;
const SIGN_NAN: u16 = 0xC000;
const SIGN_PINF: u16 = 0xD000;
const SIGN_NINF: u16 = 0xF000;

/// Decode the binary form into the server's text form (`-12.340`, `NaN`, `Infinity`).
pub fn decode(buf: &[u8]) -> Result<String, String> {
    let word = |i: usize| -> Result<u16, String> {
        buf.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".to_string())
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i16 as i32;
    let sign = word(2)?;
    let dscale = word(3)? as usize;
    match sign {
        SIGN_NAN => return Ok("NaN".into()),
        SIGN_PINF => return Ok("Infinity".into()),
        SIGN_NINF => return Ok("-Infinity".into()),
        SIGN_POS | SIGN_NEG => {}
        other => return Err(format!("bad numeric sign 0x{other:04x}")),
    }
    let mut digits = Vec::with_capacity(ndigits);
    for i in 0..ndigits {
        digits.push(word(4 + i)?);
    }
    let digit = |i: i32| -> u16 {
        if i >= 0 && (i as usize) < digits.len() {
            digits[i as usize]
        } else {
            0
        }
    };
    let mut out = String::new();
    if sign == SIGN_NEG {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                out.push_str(&digit(i).to_string());
            } else {
                out.push_str(&format!("{:04}", digit(i)));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(out)
}

/// Encode a decimal string (`-1.5`, `1e-3`, `NaN`, `Infinity`) into the binary form.
/// Returns `None` when the text is not a plain decimal number.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    let special = |sign: u16| Some(header(0, 0, sign, 0));
    match t.to_ascii_lowercase().as_str() {
        "nan" => return special(SIGN_NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => return special(SIGN_PINF),
        "-infinity" | "-inf" => return special(SIGN_NINF),
        _ => {}
    }
    let (negative, rest) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    // PostgreSQL's numeric holds at most 131072 digits before and 16383 after the point; a
    // larger exponent is the server's to reject, not ours to pad out in memory first.
    if !(-20_000..=140_000).contains(&exponent) {
        return None;
    }
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // All digits, and how many of them sit after the decimal point once the exponent applies.
    let mut all: String = format!("{int_part}{frac_part}");
    let mut scale = frac_part.len() as i64 - exponent as i64;
    if scale < 0 {
        all.extend(std::iter::repeat_n('0', (-scale) as usize));
        scale = 0;
    }
    if scale > 16383 || all.len() > 200_000 {
        return None;
    }
    let scale = scale as usize;
    let (int_digits, frac_digits) = if all.len() > scale {
        all.split_at(all.len() - scale)
    } else {
        ("", all.as_str())
    };
    let frac_digits = format!("{}{}", "0".repeat(scale - frac_digits.len()), frac_digits);

    // Group into base-10000 digits aligned on the decimal point.
    let int_digits = int_digits.trim_start_matches('0');
    let pad = (4 - int_digits.len() % 4) % 4;
    let int_padded = format!("{}{}", "0".repeat(pad), int_digits);
    let fpad = (4 - frac_digits.len() % 4) % 4;
    let frac_padded = format!("{}{}", frac_digits, "0".repeat(fpad));
    let group = |s: &str| -> Vec<u16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| {
                std::str::from_utf8(c)
                    .expect("ascii")
                    .parse()
                    .expect("digits")
            })
            .collect()
    };
    let int_groups = group(&int_padded);
    let frac_groups = group(&frac_padded);
    let mut weight = int_groups.len() as i32 - 1;
    let mut groups: Vec<u16> = int_groups.into_iter().chain(frac_groups).collect();
    // Strip leading zero groups (each one lowers the weight) and trailing zero groups.
    let leading = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let sign = if negative && !groups.is_empty() {
        SIGN_NEG
    } else {
        SIGN_POS
    };
    if groups.is_empty() {
        weight = 0;
    }
    let mut buf = header(groups.len() as u16, weight as i16, sign, scale as u16);
    for g in groups {
        buf.extend_from_slice(&g.to_be_bytes());
    }
    Some(buf)
}

fn header(ndigits: u16, weight: i16, sign: u16, dscale: u16) -> Vec<u8> {
    let mut buf = Vec::with_capacity(8 + ndigits as usize * 2);
    buf.extend_from_slice(&ndigits.to_be_bytes());
    buf.extend_from_slice(&weight.to_be_bytes());
    buf.extend_from_slice(&sign.to_be_bytes());
    buf.extend_from_slice(&dscale.to_be_bytes());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(s: &str) -> String {
        decode(&encode(s).unwrap_or_else(|| panic!("encode {s}"))).unwrap()
    }

    #[test]
    fn exact_round_trips() {
        for (input, expected) in [
            ("0", "0"),
            ("0.004", "0.004"),
            ("-12.340", "-12.340"),
            (
                "1234567890123456789012345678901234567890",
                "1234567890123456789012345678901234567890",
            ),
            ("0.00000000000000000001", "0.00000000000000000001"),
            ("10000", "10000"),
            ("9999.9999", "9999.9999"),
            ("1e3", "1000"),
            ("1.5e-3", "0.0015"),
            ("-0", "0"),
            ("+7", "7"),
            ("NaN", "NaN"),
            ("Infinity", "Infinity"),
            ("-Infinity", "-Infinity"),
            ("0.000", "0.000"),
        ] {
            assert_eq!(round(input), expected, "{input}");
        }
    }

    #[test]
    fn decodes_server_bytes() {
        // 0.004::numeric as PostgreSQL 15 sends it: ndigits 1, weight -1, sign +, dscale 3, [40].
        let wire = [0, 1, 0xff, 0xff, 0, 0, 0, 3, 0, 40];
        assert_eq!(decode(&wire).unwrap(), "0.004");
        // 5000000000 : ndigits 3, weight 2, digits [50, 0, 0].
        let wire = [0, 3, 0, 2, 0, 0, 0, 0, 0, 50, 0, 0, 0, 0];
        assert_eq!(decode(&wire).unwrap(), "5000000000");
    }

    #[test]
    fn rejects_non_numbers() {
        for bad in ["", "abc", "1.2.3", "1e", "--1", "."] {
            assert!(encode(bad).is_none(), "{bad}");
        }
    }
}
