//! The protobuf codec of the generated services: prost's, except that a message that does not
//! decode is the caller's mistake.
//!
//! tonic-prost maps every decoding error to `INTERNAL`, following a reading of the gRPC status
//! code guide that makes sense for a response a client cannot parse. For a *request* the server
//! cannot parse (a truncated message, invalid UTF-8 in a string field, a wrong wire type) the
//! fault is the caller's, and users expect `INVALID_ARGUMENT` with the decoder's message, which
//! says what was wrong. Encoding is prost's as is. The generated clients use the same codec, so
//! a response that does not decode also surfaces as `INVALID_ARGUMENT` there, with the same
//! message.

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// [`ProstCodec`] with decoding errors reported as `INVALID_ARGUMENT` (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct RequestCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder {
            inner: self.inner.decoder(),
        }
    }
}

/// prost's decoder, with its errors turned into `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct RequestDecoder<U> {
    inner: ProstDecoder<U>,
}

impl<U: prost::Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.inner.decode(buf).map_err(|status| {
            if status.code() == Code::Internal {
                Status::invalid_argument(format!(
                    "the message could not be decoded: {}",
                    status.message()
                ))
            } else {
                status
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}
