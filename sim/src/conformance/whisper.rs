//! Whisper's upload (spec §4): the client's multipart writer produces the
//! spec's form byte for byte, the form the emulator's own reader is tested
//! on.

use talky::providers::whisper::wire::{Field, multipart};

use crate::whisper::multipart::{SPEC_FORM, parse};

#[test]
fn the_client_writes_the_spec_form_the_emulator_reads() {
    let body = multipart(
        "xyz",
        "u.wav",
        "audio/wav",
        b"\r\n--xy binary",
        &[Field {
            name: "model",
            value: "m",
        }],
    );
    // The emulator's reader is held to the same bytes (`reads_a_spec_form`).
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(SPEC_FORM)
    );
    assert_eq!(parse(&body, "xyz").unwrap().len(), 2);
}
