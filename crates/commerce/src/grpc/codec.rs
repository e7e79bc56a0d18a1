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
//!
//! Errors of the gRPC framing around the message stay `INTERNAL`, as tonic reports them: a
//! message with the compressed flag but no `grpc-encoding`, or a stream that ends before the
//! length its prefix announced. They are violations of the protocol by the client's gRPC
//! library, not mistakes in what the caller asked, and grpc-go answers them the same way
//! (`checkRecvPayload`: "compressed flag set with identity or empty encoding", `codes.Internal`).
//!
//! Its buffers start at [`BUFFER_SIZE`] rather than tonic's 8 KiB: tonic allocates one buffer to
//! decode each call's request and one to encode its response, and this API's messages are a few
//! hundred bytes, so every call allocated 16 KiB it did not use, in blocks past glibc's
//! per-thread cache (1 KiB and less), served from its shared bins (`_int_malloc`,
//! `malloc_consolidate`).
//! The CPU time this saves is small: GetCart at 8,000/s, 72.1 and 70.7 µs of server CPU a call
//! before and after (`load/cpu-per-request.py`, medians of 3 interleaved rounds), within the
//! spread of Health/Check, which this codec does not serve. A larger message still fits: the
//! buffers grow by [`BUFFER_SIZE`] at a time when decoding and as needed when encoding.

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// The size a call's decoding and encoding buffers start at (see the module docs).
pub const BUFFER_SIZE: usize = 1024;

/// How much a server-streaming response may gather before it is sent: tonic's default.
const YIELD_THRESHOLD: usize = 32 * 1024;

fn buffer_settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

/// [`ProstCodec`] with decoding errors reported as `INVALID_ARGUMENT` and buffers of
/// [`BUFFER_SIZE`] (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct RequestCodec<T, U> {
    _types: std::marker::PhantomData<(T, U)>,
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
        ProstCodec::<T, U>::raw_encoder(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder {
            inner: ProstCodec::<T, U>::raw_decoder(buffer_settings()),
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
