//! The PIN of one API request: a secret field of the request body, used for that operation
//! and wiped when the request is done. A token with a PIN pad needs no PIN field.

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use tracing::instrument;
use zeroize::Zeroizing;

use crate::pin::PinSource;
use crate::token::{TokenDescription, TokenError};

/// A PIN from a request body; `Debug` never shows it.
pub struct ApiPin(SecretString);

impl std::fmt::Debug for ApiPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiPin(..)")
    }
}

impl ApiPin {
    /// The secret, for a token operation that takes it directly (PIN change, unblock).
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ApiPin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        Ok(ApiPin(SecretString::from(s.as_str().to_owned())))
    }
}

/// The PIN source for one request.
#[derive(Debug)]
pub struct RequestPin {
    pin: Option<ApiPin>,
    final_try: bool,
}

impl RequestPin {
    pub fn new(pin: Option<ApiPin>, final_try: bool) -> Self {
        RequestPin { pin, final_try }
    }
}

impl PinSource for RequestPin {
    #[instrument(skip_all)]
    fn pin_for(&self, token: &TokenDescription) -> Result<Option<SecretString>, TokenError> {
        match &self.pin {
            Some(p) => Ok(Some(p.0.clone())),
            None if token.flags.protected_authentication_path => Ok(None),
            None => Err(TokenError::PinRequired),
        }
    }

    fn allow_final_try(&self) -> bool {
        self.final_try
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_pin_parses_from_json_and_hides_in_debug() {
        #[derive(Deserialize, Debug)]
        struct B {
            pin: ApiPin,
        }
        let b: B = serde_json::from_str(r#"{"pin":"246813"}"#).unwrap();
        assert!(!format!("{b:?}").contains("246813"));
        let src = RequestPin::new(Some(b.pin), false);
        assert!(!format!("{src:?}").contains("246813"));
    }
}
