//! Phone numbers and the time zones they imply.
//!
//! Contacts are stored with their number in E.164 form (`+12125550123`) so
//! that the database's unique constraint on (campaign, phone) catches the
//! same number written two ways. The calling window of a contact depends on
//! its local time; when the operator does not give a zone, it is derived
//! from the number's country through the tz database's `zone.tab` table
//! (copied to `src/phone/zone.tab`), but only when that country has exactly
//! one zone. For countries with several zones the dialer applies the most
//! restrictive calling window over [`candidate_zones`].

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::LazyLock;

use chrono_tz::Tz;
use phonenumber::country::Id;
use phonenumber::{ParseError, PhoneNumber};

/// Longest input (in characters) handed to the phone number parser; real
/// numbers, even written with spaces and punctuation, are far shorter.
pub const MAX_INPUT_CHARS: usize = 64;

/// How much of a rejected input is echoed back in an error message, so that
/// error reports stay short and do not copy whole cells back to the client.
pub const MAX_ECHO_CHARS: usize = 32;

/// The tz database's country-to-zone table (public domain), embedded.
const ZONE_TAB: &str = include_str!("phone/zone.tab");

/// Why a phone number, region code or time zone name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The input is empty or only whitespace.
    #[error("phone number is empty")]
    Empty,
    /// The input is longer than [`MAX_INPUT_CHARS`]; it is not parsed.
    #[error("phone number is too long ({len} characters, at most {max})")]
    TooLong {
        /// Length of the (trimmed) input in characters.
        len: usize,
        /// The cap, [`MAX_INPUT_CHARS`].
        max: usize,
    },
    /// The input does not look like a phone number at all.
    #[error("not a phone number")]
    NotANumber,
    /// The number starts with a country calling code that does not exist.
    #[error("unknown country calling code")]
    UnknownCountryCode,
    /// The number has too few digits to be a phone number.
    #[error("too few digits for a phone number")]
    TooShort,
    /// The number has more digits than any phone number can have.
    #[error("too many digits for a phone number")]
    TooManyDigits,
    /// The number parses but is not a valid number of its region (wrong
    /// length or an unallocated prefix).
    #[error("not a valid phone number for {region}")]
    InvalidForRegion {
        /// The region (`GB (+44)`) or, when none is known, the calling code
        /// (`+888`) the number was checked against.
        region: String,
    },
    /// The number carries an extension, which an outbound call cannot dial;
    /// dropping it silently would reach the wrong person.
    #[error("phone numbers with an extension cannot be dialled")]
    Extension,
    /// A configured default region is not an ISO 3166 alpha-2 code known to
    /// the phone number metadata.
    #[error("unknown region {0:?}: expected an ISO 3166 alpha-2 code such as US or GB")]
    UnknownRegion(String),
    /// A time zone name is not in the IANA tz database.
    #[error("unknown time zone {0:?}: expected an IANA name such as Europe/London")]
    UnknownTimezone(String),
}

/// Parses `input` as a phone number (national numbers are read in
/// `default_region`), checks that it is valid and returns it in E.164 form.
pub fn normalize(input: &str, default_region: Id) -> Result<String, PhoneError> {
    let input = input.trim();
    check_input_length(input)?;
    let number = parse_number(input, default_region)?;
    if number.extension().is_some() {
        return Err(PhoneError::Extension);
    }
    if !is_valid(&number) {
        return Err(PhoneError::InvalidForRegion {
            region: region_label(&number),
        });
    }
    Ok(to_e164(&number))
}

/// Parses a region code from configuration (`"US"`, `"gb"`), ignoring case
/// and surrounding whitespace.
pub fn parse_region(code: &str) -> Result<Id, PhoneError> {
    let code = code.trim();
    let unknown = || PhoneError::UnknownRegion(truncate_echo(code));
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(unknown());
    }
    Id::from_str(&code.to_ascii_uppercase()).map_err(|_| unknown())
}

/// Parses an IANA time zone name, ignoring case and surrounding whitespace,
/// and returns the zone; its `name()` is the canonical spelling to store
/// (`"america/new_york"` gives `America/New_York`). Backward-compatible
/// link names such as `US/Eastern` are accepted and kept as they are.
pub fn parse_timezone(name: &str) -> Result<Tz, PhoneError> {
    let name = name.trim();
    if let Ok(tz) = Tz::from_str(name) {
        return Ok(tz);
    }
    ZONES_BY_LOWERCASE_NAME
        .get(name.to_lowercase().as_str())
        .copied()
        .ok_or_else(|| PhoneError::UnknownTimezone(truncate_echo(name)))
}

/// The IANA zones of the country the number belongs to, in `zone.tab`
/// order; empty when the number does not parse or its country (or
/// non-geographic service) has no entry in the table.
pub fn candidate_zones(e164: &str) -> Vec<Tz> {
    let Some(region) = number_region(e164) else {
        return Vec::new();
    };
    ZONES_BY_COUNTRY
        .get(region.as_ref())
        .cloned()
        .unwrap_or_default()
}

/// The number's time zone when its country has exactly one zone (`+44` ->
/// `Europe/London`); `None` when the country spans several zones (US, CA,
/// AU, BR, RU, and also DE with `Europe/Busingen`) or is unknown.
pub fn derive_timezone(e164: &str) -> Option<Tz> {
    match candidate_zones(e164).as_slice() {
        [only] => Some(*only),
        _ => None,
    }
}

/// Cuts `input` to [`MAX_ECHO_CHARS`] characters for use in a message,
/// marking the cut with an ellipsis.
pub fn truncate_echo(input: &str) -> String {
    match input.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => format!("{}…", &input[..cut]),
        None => input.to_owned(),
    }
}

/// Rejects empty and overlong inputs before they reach the parser.
fn check_input_length(input: &str) -> Result<(), PhoneError> {
    if input.is_empty() {
        return Err(PhoneError::Empty);
    }
    let len = input.chars().count();
    if len > MAX_INPUT_CHARS {
        return Err(PhoneError::TooLong {
            len,
            max: MAX_INPUT_CHARS,
        });
    }
    Ok(())
}

/// Runs the `phonenumber` parser. The crate has had panics on odd inputs
/// (rust-phonenumber issues #32, #43), so a panic is caught and reported as
/// "not a phone number" instead of taking the request down.
///
/// Numbers written with a leading `+` are parsed without the default
/// region: the crate strips the default region's national prefix even after
/// an explicit country code (with `US`, `+33 1 42 68 53 00` loses its `1`).
fn parse_number(input: &str, default_region: Id) -> Result<PhoneNumber, PhoneError> {
    let region = (!is_international(input)).then_some(default_region);
    catch_unwind(|| phonenumber::parse(region, input))
        .unwrap_or(Err(ParseError::NoNumber))
        .map_err(map_parse_error)
}

/// Whether the first sign or digit of `input` is a plus (ASCII or
/// full-width), as in `+44 …`, `(+44) …` or `tel:+44…`.
fn is_international(input: &str) -> bool {
    let first = input
        .chars()
        .find(|c| c.is_ascii_digit() || matches!(c, '+' | '＋'));
    matches!(first, Some('+' | '＋'))
}

/// Validity check, guarded like [`parse_number`].
fn is_valid(number: &PhoneNumber) -> bool {
    catch_unwind(AssertUnwindSafe(|| number.is_valid())).unwrap_or(false)
}

/// Formats a parsed number as E.164 without going through the crate's
/// `Display`, which fails (and would panic in `to_string`) for numbers whose
/// calling code has no metadata.
fn to_e164(number: &PhoneNumber) -> String {
    format!("+{}{}", number.code().value(), number.national())
}

/// Names the region a number was validated against, for error messages.
fn region_label(number: &PhoneNumber) -> String {
    let code = number.code().value();
    match region_of(number) {
        Some(id) => format!("{} (+{code})", id.as_ref()),
        None => format!("+{code}"),
    }
}

/// Translates the parser's error into ours.
fn map_parse_error(error: ParseError) -> PhoneError {
    match error {
        ParseError::InvalidCountryCode => PhoneError::UnknownCountryCode,
        ParseError::TooShortAfterIdd | ParseError::TooShortNsn => PhoneError::TooShort,
        ParseError::TooLong => PhoneError::TooManyDigits,
        ParseError::NoNumber | ParseError::MalformedInteger(_) => PhoneError::NotANumber,
    }
}

/// The region of a parsed number. The crate's own lookup drops leading
/// zeros of the national number and so finds no region for Italian numbers
/// (`+39 06 …`); then the region whose leading digits match is taken, else
/// the main country of the calling code.
fn region_of(number: &PhoneNumber) -> Option<Id> {
    catch_unwind(AssertUnwindSafe(|| {
        number.country().id().or_else(|| region_by_code(number))
    }))
    .unwrap_or(None)
}

/// Fallback of [`region_of`] from the metadata of the calling code.
fn region_by_code(number: &PhoneNumber) -> Option<Id> {
    let database = &*phonenumber::metadata::DATABASE;
    let national = number.national().to_string();
    let regions = database.region(&number.code().value())?;
    let metadata: Vec<_> = regions.iter().filter_map(|r| database.by_id(*r)).collect();
    let by_digits = metadata.iter().find(|meta| {
        meta.leading_digits()
            .and_then(|digits| digits.find(&national))
            .is_some_and(|found| found.start() == 0)
    });
    let chosen = by_digits.or_else(|| metadata.iter().find(|m| m.is_main_country_for_code()))?;
    Id::from_str(chosen.id()).ok()
}

/// The region of a number given in international form, if it parses.
fn number_region(e164: &str) -> Option<Id> {
    let e164 = e164.trim();
    if check_input_length(e164).is_err() {
        return None;
    }
    let number = catch_unwind(|| phonenumber::parse(None, e164)).ok()?.ok()?;
    region_of(&number)
}

/// Every zone chrono-tz knows, keyed by its lowercased name, for
/// case-insensitive lookups.
static ZONES_BY_LOWERCASE_NAME: LazyLock<HashMap<String, Tz>> = LazyLock::new(|| {
    chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| (tz.name().to_lowercase(), *tz))
        .collect()
});

/// `zone.tab` parsed once: ISO country code -> zones, in file order.
static ZONES_BY_COUNTRY: LazyLock<HashMap<&'static str, Vec<Tz>>> =
    LazyLock::new(|| parse_zone_tab(ZONE_TAB));

/// Parses `zone.tab` lines (`CC<TAB>coordinates<TAB>Zone[<TAB>comment]`),
/// skipping comments and zones chrono-tz does not know.
fn parse_zone_tab(text: &str) -> HashMap<&str, Vec<Tz>> {
    let mut map: HashMap<&str, Vec<Tz>> = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut columns = line.split('\t');
        let (Some(country), Some(_coordinates), Some(zone)) =
            (columns.next(), columns.next(), columns.next())
        else {
            continue;
        };
        if let Ok(tz) = Tz::from_str(zone.trim()) {
            map.entry(country.trim()).or_default().push(tz);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::country::Id::{DE, FR, GB, US};

    #[test]
    fn normalizes_international_numbers() {
        assert_eq!(normalize("+44 20 7946 0958", US).unwrap(), "+442079460958");
        assert_eq!(normalize("+33 1 42 68 53 00", US).unwrap(), "+33142685300");
        assert_eq!(normalize("+1 (212) 555-0123", GB).unwrap(), "+12125550123");
        assert_eq!(normalize("  +49 30 901820  ", US).unwrap(), "+4930901820");
    }

    #[test]
    fn national_numbers_use_the_default_region() {
        assert_eq!(normalize("(212) 555-0123", US).unwrap(), "+12125550123");
        assert_eq!(normalize("212.555.0123", US).unwrap(), "+12125550123");
        assert_eq!(normalize("020 7946 0958", GB).unwrap(), "+442079460958");
        assert_eq!(normalize("01 42 68 53 00", FR).unwrap(), "+33142685300");
        assert_eq!(normalize("030 901820", DE).unwrap(), "+4930901820");
    }

    #[test]
    fn explicit_country_code_overrides_the_default_region() {
        // US national prefix "1" must not be stripped from a French number.
        assert_eq!(normalize("+33 1 42 68 53 00", US).unwrap(), "+33142685300");
        assert_eq!(
            normalize("(+33) 1 42 68 53 00", US).unwrap(),
            "+33142685300"
        );
        assert_eq!(normalize("＋33 1 42 68 53 00", US).unwrap(), "+33142685300");
        // The Russian national prefix "8" likewise.
        assert_eq!(
            normalize("+33 8 92 68 53 00", Id::RU).unwrap(),
            "+33892685300"
        );
    }

    #[test]
    fn keeps_italian_leading_zero() {
        assert_eq!(normalize("+39 06 4567 8901", US).unwrap(), "+390645678901");
        assert_eq!(normalize("06 4567 8901", Id::IT).unwrap(), "+390645678901");
    }

    #[test]
    fn rejects_empty_and_overlong_input() {
        assert_eq!(normalize("", US), Err(PhoneError::Empty));
        assert_eq!(normalize("   ", US), Err(PhoneError::Empty));
        let long = "1".repeat(65);
        assert_eq!(
            normalize(&long, US),
            Err(PhoneError::TooLong { len: 65, max: 64 })
        );
    }

    #[test]
    fn rejects_non_numbers() {
        assert_eq!(normalize("hello", US), Err(PhoneError::NotANumber));
        assert_eq!(normalize("12", US), Err(PhoneError::TooShort));
    }

    #[test]
    fn rejects_invalid_numbers_naming_the_region() {
        let err = normalize("(212) 555-012", US).unwrap_err();
        assert!(
            matches!(err, PhoneError::InvalidForRegion { .. }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "not a valid phone number for US (+1)");
        let err = normalize("+44 20 7946", US).unwrap_err();
        assert_eq!(err.to_string(), "not a valid phone number for GB (+44)");
        let err = normalize("+1 999 555 0123", US).unwrap_err();
        assert!(
            matches!(err, PhoneError::InvalidForRegion { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn rejects_unknown_calling_codes_and_extensions() {
        assert_eq!(
            normalize("+999 1234 5678", US),
            Err(PhoneError::UnknownCountryCode)
        );
        assert_eq!(
            normalize("(212) 555-0123 ext. 45", US),
            Err(PhoneError::Extension)
        );
    }

    #[test]
    fn survives_inputs_that_have_crashed_the_parser() {
        assert!(normalize("  2 22#:", US).is_err());
        assert!(normalize("003-836-4618x3001", Id::CH).is_err());
        assert!(normalize("+", US).is_err());
        assert!(normalize("tel:;phone-context=", US).is_err());
    }

    #[test]
    fn parses_regions_case_insensitively() {
        assert_eq!(parse_region("US"), Ok(US));
        assert_eq!(parse_region("gb"), Ok(GB));
        assert_eq!(parse_region(" Fr "), Ok(FR));
        assert_eq!(
            parse_region("XX"),
            Err(PhoneError::UnknownRegion("XX".into()))
        );
        assert!(parse_region("USA").is_err());
        assert!(parse_region("").is_err());
        assert!(parse_region("1é").is_err());
    }

    #[test]
    fn parses_timezones_case_insensitively() {
        assert_eq!(parse_timezone("Europe/London"), Ok(Tz::Europe__London));
        let tz = parse_timezone("america/new_york").unwrap();
        assert_eq!(tz.name(), "America/New_York");
        assert_eq!(
            parse_timezone(" EUROPE/PARIS ").unwrap().name(),
            "Europe/Paris"
        );
        assert_eq!(parse_timezone("utc").unwrap().name(), "UTC");
        assert_eq!(parse_timezone("us/eastern").unwrap().name(), "US/Eastern");
    }

    #[test]
    fn rejects_unknown_timezones_with_a_short_echo() {
        assert_eq!(
            parse_timezone("Mars/Olympus"),
            Err(PhoneError::UnknownTimezone("Mars/Olympus".into()))
        );
        assert!(parse_timezone("").is_err());
        let long = "x".repeat(100);
        let message = parse_timezone(&long).unwrap_err().to_string();
        assert!(
            message.contains(&format!("{}…", "x".repeat(32))),
            "{message}"
        );
        assert!(!message.contains(&"x".repeat(33)), "{message}");
    }

    #[test]
    fn single_zone_countries_derive_their_zone() {
        assert_eq!(derive_timezone("+442079460958"), Some(Tz::Europe__London));
        assert_eq!(derive_timezone("+33142685300"), Some(Tz::Europe__Paris));
        assert_eq!(derive_timezone("+390645678901"), Some(Tz::Europe__Rome));
        assert_eq!(derive_timezone("+390669812345"), Some(Tz::Europe__Vatican));
        assert_eq!(derive_timezone("+81312345678"), Some(Tz::Asia__Tokyo));
    }

    #[test]
    fn multi_zone_countries_are_ambiguous() {
        for number in [
            "+12125550123",
            "+14165550123",
            "+61212345678",
            "+4930901820",
        ] {
            assert_eq!(derive_timezone(number), None, "{number}");
            assert!(candidate_zones(number).len() > 1, "{number}");
        }
        let us = candidate_zones("+12125550123");
        assert!(us.contains(&Tz::America__New_York));
        assert!(us.contains(&Tz::America__Los_Angeles));
        assert!(!us.contains(&Tz::America__Toronto));
        let ca = candidate_zones("+14165550123");
        assert!(ca.contains(&Tz::America__Toronto));
        assert!(!ca.contains(&Tz::America__New_York));
        let russia = candidate_zones("+74951234567");
        assert!(russia.contains(&Tz::Europe__Moscow));
        assert!(russia.contains(&Tz::Asia__Vladivostok));
    }

    #[test]
    fn unknown_or_unparsable_numbers_have_no_zones() {
        assert!(candidate_zones("").is_empty());
        assert!(candidate_zones("garbage").is_empty());
        assert!(candidate_zones("+80012345678").is_empty());
        assert_eq!(derive_timezone("+80012345678"), None);
    }

    #[test]
    fn zone_table_is_complete() {
        let table = &*ZONES_BY_COUNTRY;
        assert!(table.len() > 240, "{}", table.len());
        assert_eq!(table.get("GB"), Some(&vec![Tz::Europe__London]));
        assert_eq!(table.get("US").map(Vec::len), Some(29));
        assert!(ZONE_TAB.starts_with("# tzdb timezone descriptions"));
    }

    #[test]
    fn truncates_echo_on_char_boundaries() {
        assert_eq!(truncate_echo("short"), "short");
        let cut = truncate_echo(&"é".repeat(40));
        assert_eq!(cut, format!("{}…", "é".repeat(32)));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(input in "\\PC{0,80}") {
            let _ = normalize(&input, US);
            let _ = candidate_zones(&input);
            let _ = parse_region(&input);
            let _ = parse_timezone(&input);
        }

        #[test]
        fn never_panics_on_phone_like_text(input in "[-+0-9 ()#*x.,;:=tel]{0,40}", region in 0usize..4) {
            let region = [US, GB, FR, Id::CH][region];
            if let Ok(e164) = normalize(&input, region) {
                proptest::prop_assert!(e164.starts_with('+'));
                proptest::prop_assert_eq!(normalize(&e164, US), Ok(e164.clone()));
            }
        }
    }
}
