//! Token strings. They are credentials: `Debug` and `Display` print a
//! placeholder, and the only way to the text is the explicitly named
//! [`AccessToken::expose_secret`] / [`RefreshToken::expose_secret`].

use std::fmt;
use std::sync::Arc;

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Cloning is cheap (a shared, immutable string).
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a token string received from a provider or a store.
            pub fn new(secret: impl Into<Arc<str>>) -> Self {
                $name(secret.into())
            }

            /// The token text, for the one place that must send or store it.
            /// Never log it, never put it in an error message.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
    };
}

secret_type!(
    /// An OAuth2 access token: what callers present to the provider's API.
    AccessToken
);
secret_type!(
    /// An OAuth2 refresh token. On rotating providers each one works once.
    RefreshToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let a = AccessToken::new("gho_very_secret");
        let r = RefreshToken::new("ghr_very_secret");
        for shown in [
            format!("{a:?}"),
            format!("{a}"),
            format!("{r:?}"),
            format!("{r}"),
            format!("{:?}", Some((&a, &r))),
        ] {
            assert!(!shown.contains("very_secret"), "{shown}");
        }
        assert_eq!(format!("{a:?}"), "AccessToken(<redacted>)");
        assert_eq!(r.expose_secret(), "ghr_very_secret");
    }
}
