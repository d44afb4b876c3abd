//! A stateful identity provider on wiremock (feature `idp`). Being written.
