"""PSI engine: the interface (:mod:`.interface`) and the built-in ECDH-PSI over X25519 (:mod:`.ecdh`)."""

from .ecdh import EcdhPsi
from .interface import PsiConfig, PsiEngine, PsiError, PsiPeerAborted, PsiProtocolError, PsiResult, Transport

__all__ = [
    "EcdhPsi",
    "PsiConfig",
    "PsiEngine",
    "PsiError",
    "PsiPeerAborted",
    "PsiProtocolError",
    "PsiResult",
    "Transport",
]
