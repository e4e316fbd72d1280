//! Phone numbers as screens show them to people who may be looked over
//! the shoulder: the country and the last two digits, enough to tell the
//! calls on a screen apart, never enough to call the person back.

/// Two-digit country calling codes (ITU-T E.164 assignments). Country
/// codes are prefix-free: `1` and `7` are the only one-digit codes, and a
/// number starting with neither nor one of these has a three-digit code.
const TWO_DIGIT_CODES: &[&str] = &[
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// Digits a number keeps at its end.
const KEPT: usize = 2;

/// The hidden part, the same whatever the number's length (its length
/// would say something about it too).
const HIDDEN: &str = "•••• ••";

/// `+442079460977` as `+44 •••• ••77`: the country calling code, a fixed
/// run of dots, the last two digits. Anything but the digits is ignored
/// (`+44 20 7946 0977` masks the same); a number too short to keep
/// digits of, or one without a country code, keeps none.
pub fn mask_phone(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let code_len = match digits.as_bytes().first() {
        None => return "••••".into(),
        Some(b'1' | b'7') => 1,
        Some(_) if TWO_DIGIT_CODES.contains(&digits.get(..2).unwrap_or("")) => 2,
        Some(_) => 3,
    };
    // A national number shorter than four digits is no phone number; keep
    // nothing of it rather than most of it.
    if !number.trim_start().starts_with('+') || digits.len() < code_len + 4 {
        return "••••".into();
    }
    let (code, rest) = digits.split_at(code_len);
    let last = &rest[rest.len() - KEPT..];
    format!("+{code} {HIDDEN}{last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_country_code_and_the_last_two_digits() {
        assert_eq!(mask_phone("+442079460977"), "+44 •••• ••77");
        assert_eq!(mask_phone("+44 20 7946 0977"), "+44 •••• ••77");
        assert_eq!(mask_phone("+12125550123"), "+1 •••• ••23");
        assert_eq!(mask_phone("+79161234567"), "+7 •••• ••67");
        assert_eq!(mask_phone("+353861234589"), "+353 •••• ••89");
        assert_eq!(mask_phone("+33612345678"), "+33 •••• ••78");
    }

    #[test]
    fn hides_the_length_and_never_shows_more_than_two_digits() {
        let long = mask_phone("+4420794609771234");
        let short = mask_phone("+4420794612");
        assert_eq!(long.len(), short.len());
        for number in ["+442079460977", "+12125550123", "+353861234589"] {
            let shown = mask_phone(number)
                .chars()
                .filter(char::is_ascii_digit)
                .count();
            let code = mask_phone(number)
                .split(' ')
                .next()
                .map_or(0, |c| c.len() - 1);
            assert_eq!(shown - code, 2, "{number}");
        }
    }

    #[test]
    fn what_is_no_international_number_keeps_nothing() {
        assert_eq!(mask_phone(""), "••••");
        assert_eq!(mask_phone("+44 123"), "••••");
        assert_eq!(mask_phone("02079460977"), "••••", "no country code");
        assert_eq!(mask_phone("not a number"), "••••");
    }
}
