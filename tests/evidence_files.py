"""Builders of image files with metadata, for the evidence tests: PNG text chunks, XMP, EXIF, and
C2PA-signed files made with c2pa-python's Builder and a certificate chain generated here."""

from __future__ import annotations

import datetime
import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image, PngImagePlugin

AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAPTURE_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
A1111_PARAMETERS = (
    "a photo of an astronaut riding a horse, highly detailed\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234567, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.6.0"
)
COMFY_PROMPT = (
    '{"3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 25, "cfg": 8.0, '
    '"sampler_name": "euler", "scheduler": "normal", "denoise": 1.0, "model": ["4", 0]}}, '
    '"4": {"class_type": "CheckpointLoaderSimple", '
    '"inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}}, '
    '"6": {"class_type": "CLIPTextEncode", '
    '"inputs": {"text": "a castle on a hill at dusk", "clip": ["4", 1]}}}'
)
COMFY_WORKFLOW = (
    '{"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}, '
    '{"id": 4, "type": "CheckpointLoaderSimple"}, '
    '{"id": 6, "type": "CLIPTextEncode"}, {"id": 9, "type": "SaveImage"}]}'
)


def pixels(size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A deterministic RGB gradient."""
    width, height = size
    image = Image.new("RGB", size)
    image.putdata([(x * 255 // width, y * 255 // height, 128) for y in range(height) for x in range(width)])
    return image


def save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_with_text(**chunks: str) -> bytes:
    """A PNG with one tEXt chunk per keyword (an iTXt for non-Latin-1 text)."""
    info = PngImagePlugin.PngInfo()
    for keyword, text in chunks.items():
        try:
            text.encode("latin-1")
            info.add_text(keyword, text)
        except UnicodeEncodeError:
            info.add_itxt(keyword, text)
    return save(pixels(), "PNG", pnginfo=info)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_with_raw_chunks(*chunks: bytes) -> bytes:
    """A PNG with ``chunks`` (from :func:`png_chunk`) inserted right after IHDR."""
    data = save(pixels(), "PNG")
    cut = 8 + 25  # signature + IHDR chunk
    return data[:cut] + b"".join(chunks) + data[cut:]


def xmp_packet(source_type: str = AI_SOURCE, extra: str = "") -> bytes:
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" Iptc4xmpExt:DigitalSourceType="{source_type}">'
        f"{extra}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def jpeg_with_xmp(packet: bytes, quality: int = 90) -> bytes:
    return save(pixels(), "JPEG", quality=quality, xmp=packet)


def camera_jpeg(quality: int = 92) -> bytes:
    """A JPEG with camera-style EXIF: Make, Model, Software, DateTimeOriginal."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R5"
    exif[0x0131] = "Firmware Version 1.8.1"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:17 14:03:22"
    return save(pixels(), "JPEG", quality=quality, exif=exif.tobytes())


def jpeg_with_software(software: str) -> bytes:
    exif = Image.Exif()
    exif[0x0131] = software
    return save(pixels(), "JPEG", quality=90, exif=exif.tobytes())


def jpeg_with_user_comment(text: str) -> bytes:
    """A JPEG as A1111 saves one: the parameters as EXIF UserComment (UNICODE, UTF-16 big-endian)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + text.encode("utf-16-be")
    return save(pixels(), "JPEG", quality=90, exif=exif.tobytes())


@dataclass(frozen=True)
class Credentials:
    """An ES256 test CA and a signing certificate it issued (PEM)."""

    ca_pem: bytes
    chain_pem: bytes  # signing certificate, then the CA
    key_pem: bytes


def make_credentials() -> Credentials:
    """A CA and an end-entity certificate with what c2pa-rs requires of a signer: X.509 v3, P-256,
    keyUsage digitalSignature, an extended key usage (emailProtection; anyExtendedKeyUsage is
    refused), not a CA, subject and authority key identifiers."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aiclassify tests"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            ]
        )

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=not sign, crl_sign=not sign,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    validity = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("aiclassify test root CA"))
        .issuer_name(name("aiclassify test root CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("aiclassify test signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Credentials(
        ca.public_bytes(pem),
        leaf.public_bytes(pem) + ca.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def c2pa_signed(
    credentials: Credentials, fmt: str = "JPEG", source_type: str = AI_SOURCE, remote_url: str | None = None
) -> bytes:
    """An image signed with Content Credentials declaring ``source_type`` (c2pa.created action);
    with ``remote_url``, the manifest is not embedded and the file only points to that URL."""
    import c2pa

    mime = {"JPEG": "image/jpeg", "PNG": "image/png"}[fmt]
    manifest = {
        "claim_generator_info": [{"name": "aiclassify-test-generator", "version": "1.0"}],
        "title": f"test.{fmt.lower()}",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": source_type}]},
            }
        ],
    }
    context = c2pa.Context.from_dict(
        {
            "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
            "builder": {"thumbnail": {"enabled": False}},
        }
    )
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, credentials.chain_pem, credentials.key_pem, None)
    )
    source = save(pixels(), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    output = io.BytesIO()
    with c2pa.Builder(manifest, context) as builder:
        if remote_url:
            builder.set_no_embed()
            builder.set_remote_url(remote_url)
        builder.sign(signer, mime, io.BytesIO(source), output)
    signer.close()
    context.close()
    return output.getvalue()


def tamper_pixels(data: bytes, fmt: str) -> bytes:
    """``data`` with one byte of image data changed after signing (the hash binding breaks)."""
    changed = bytearray(data)
    # inside the entropy-coded scan of a JPEG, inside the compressed pixel data of a PNG
    position = data.rindex(b"\xff\xda") + 40 if fmt == "JPEG" else data.index(b"IDAT") + 10
    changed[position] ^= 0x55
    return bytes(changed)
