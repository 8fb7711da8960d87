//! A plugin built against `weft:plugin@0.1.0`, the contract before this host's: the host must
//! refuse it at load, naming both versions.

wit_bindgen::generate!({ path: "wit", world: "transform" });

struct Old;

impl exports::weft::plugin::transform_api::Guest for Old {
    fn describe() -> String {
        "old".into()
    }
}

export!(Old);
