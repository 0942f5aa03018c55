"""CMT transformer (decoder with bias cross-attention) and coordinate encodings."""
from .cmt_transformer import CmtDecoderLayer, CmtTransformer, CmtTransformerDecoder

__all__ = ['CmtDecoderLayer', 'CmtTransformerDecoder', 'CmtTransformer']
