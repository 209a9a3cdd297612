//! stub
use alloc::boxed::Box;
use crate::decode::{Decoder, DecoderOptions};
pub struct IntelliVueClient;
impl Decoder for IntelliVueClient {
    fn protocol(&self) -> &'static str { "intellivue" }
    fn feed(&mut self, _b: &[u8], _n: crate::time::Timestamp, _o: &mut alloc::vec::Vec<crate::decode::Event>) {}
}
pub fn make(_o: &DecoderOptions) -> Box<dyn Decoder> { Box::new(IntelliVueClient) }
