//! The receiver's counting side: spans counted by walking the protobuf, without decoding
//! them (a benchmark's receiver should cost little), served over gRPC with a pass-through codec.

use std::sync::Arc;

use super::Store;

/// Counts the spans of an encoded `ExportTraceServiceRequest` by walking its protobuf, without
/// decoding them: (spans with a 16-byte trace id and an 8-byte span id, other spans). `None`
/// when the bytes are not well-formed protobuf.
pub fn count_spans(request: &[u8]) -> Option<(usize, usize)> {
    let (mut good, mut bad) = (0, 0);
    for field in Fields(request) {
        let Some((1, Some(resource_spans))) = field? else {
            continue;
        };
        for field in Fields(resource_spans) {
            let Some((2, Some(scope_spans))) = field? else {
                continue;
            };
            for field in Fields(scope_spans) {
                let Some((2, Some(span))) = field? else {
                    continue;
                };
                let (mut trace_id, mut span_id) = (0, 0);
                for field in Fields(span) {
                    match field? {
                        Some((1, Some(v))) => trace_id = v.len(),
                        Some((2, Some(v))) => span_id = v.len(),
                        _ => {}
                    }
                    if trace_id > 0 && span_id > 0 {
                        break;
                    }
                }
                if (trace_id, span_id) == (16, 8) {
                    good += 1;
                } else {
                    bad += 1;
                }
            }
        }
    }
    Some((good, bad))
}

/// The fields of a protobuf message: `Some(Some((number, bytes of a length-delimited field)))`,
/// `None` for malformed bytes (then the iteration ends).
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Option<Option<(u64, Option<&'a [u8]>)>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_none() {
            self.0 = &[];
        }
        Some(field.map(Some))
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> Option<(u64, Option<&'a [u8]>)> {
        let buf = &mut self.0;
        let key = prost::encoding::decode_varint(buf).ok()?;
        let value = match key & 7 {
            0 => {
                prost::encoding::decode_varint(buf).ok()?;
                None
            }
            1 => {
                *buf = buf.get(8..)?;
                None
            }
            2 => {
                let len = usize::try_from(prost::encoding::decode_varint(buf).ok()?).ok()?;
                let v = buf.get(..len)?;
                *buf = buf.get(len..)?;
                Some(v)
            }
            5 => {
                *buf = buf.get(4..)?;
                None
            }
            _ => return None,
        };
        Some((key >> 3, value))
    }
}

/// A gRPC trace service that counts spans without decoding them (see [`count_spans`]).
#[derive(Clone)]
pub(super) struct CountingTraces(pub(super) Arc<Store>);

impl tonic::server::NamedService for CountingTraces {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for CountingTraces
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        let store = self.0.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_max_message_size_config(Some(64 << 20), None);
            Ok(grpc.unary(Count(store), req).await)
        })
    }
}

struct Count(Arc<Store>);

impl tonic::server::UnaryService<bytes::Bytes> for Count {
    type Response = bytes::Bytes;
    type Future = tonic::codegen::BoxFuture<tonic::Response<bytes::Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<bytes::Bytes>) -> Self::Future {
        let store = self.0.clone();
        Box::pin(async move {
            if !store.count_request(&request.into_inner()) {
                return Err(tonic::Status::invalid_argument("malformed protobuf"));
            }
            // An empty message is a valid ExportTraceServiceResponse.
            Ok(tonic::Response::new(bytes::Bytes::new()))
        })
    }
}

/// Passes protobuf bytes through undecoded.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = bytes::Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<bytes::Bytes>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n)))
    }
}
