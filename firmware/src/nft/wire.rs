//! Netlink framing: building messages with (nested) attributes, and walking them back.
//!
//! Written by hand instead of using netlink-packet-core's typed messages because nf_tables
//! batches are tens of thousands of tiny messages: appending straight into one `Vec<u8>`
//! is both the fastest way to build them and the easiest to compare byte-for-byte with
//! what `nft` sends. All lengths are native-endian (netlink headers are host order); the
//! values nf_tables interprets as numbers are big-endian, and callers choose explicitly.

use super::uapi::*;

/// Pads a length to netlink's 4-byte alignment.
pub const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// A growing buffer of netlink messages.
#[derive(Debug, Default, Clone)]
pub struct MsgBuf {
    pub buf: Vec<u8>,
}

/// Offset of a message or nest whose length is patched when it is closed.
#[derive(Debug, Clone, Copy)]
#[must_use = "close the message or nest"]
pub struct Mark(usize);

impl MsgBuf {
    pub fn with_capacity(cap: usize) -> Self {
        MsgBuf {
            buf: Vec::with_capacity(cap),
        }
    }

    /// Starts a message: `nlmsghdr` followed by `nfgenmsg` (family, version 0, res_id
    /// big-endian as the kernel expects).
    pub fn begin(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Mark {
        let m = self.begin_hdr(ty, flags, seq);
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        m
    }

    /// Starts a message that is only `nlmsghdr`; the caller appends its family header
    /// (`ifinfomsg`, `rtmsg`, `genlmsghdr` …) with [`MsgBuf::raw`].
    pub fn begin_hdr(&mut self, ty: u16, flags: u16, seq: u32) -> Mark {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        Mark(start)
    }

    /// Appends bytes as they are (a fixed family header), without padding.
    pub fn raw(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Starts an nf_tables message of kind `msg` (an `NFT_MSG_*`).
    pub fn begin_nft(&mut self, msg: u16, flags: u16, seq: u32, family: u8) -> Mark {
        self.begin((NFNL_SUBSYS_NFTABLES << 8) | msg, flags, seq, family, 0)
    }

    /// Closes a message by writing its length.
    pub fn end(&mut self, m: Mark) {
        let len = u32::try_from(self.buf.len() - m.0).expect("netlink message over 4 GiB");
        self.buf[m.0..m.0 + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Appends an attribute with raw payload, zero-padded to 4 bytes.
    pub fn put(&mut self, ty: u16, data: &[u8]) {
        let len = u16::try_from(4 + data.len()).expect("netlink attribute over 64 KiB");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        let padded = align4(self.buf.len());
        self.buf.resize(padded, 0);
    }

    pub fn put_u32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }

    pub fn put_u64(&mut self, ty: u16, v: u64) {
        self.put(ty, &v.to_be_bytes());
    }

    /// Native-endian numbers, as rtnetlink and generic netlink families use.
    pub fn put_u8(&mut self, ty: u16, v: u8) {
        self.put(ty, &[v]);
    }

    pub fn put_u16_ne(&mut self, ty: u16, v: u16) {
        self.put(ty, &v.to_ne_bytes());
    }

    pub fn put_u32_ne(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_ne_bytes());
    }

    /// A NUL-terminated string, as libmnl's `mnl_attr_put_strz`.
    pub fn put_strz(&mut self, ty: u16, s: &str) {
        let len = u16::try_from(4 + s.len() + 1).expect("netlink attribute over 64 KiB");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// Opens a nested attribute (NLA_F_NESTED set, as libmnl does).
    pub fn nest(&mut self, ty: u16) -> Mark {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        Mark(start)
    }

    pub fn end_nest(&mut self, m: Mark) {
        let len =
            u16::try_from(self.buf.len() - m.0).expect("nested netlink attribute over 64 KiB");
        self.buf[m.0..m.0 + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Bytes written since a mark (to decide when to split a long element list).
    pub fn since(&self, m: Mark) -> usize {
        self.buf.len() - m.0
    }
}

/// One netlink message as received.
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    pub ty: u16,
    /// Only golden tests look at request flags; replies are classified by type.
    #[cfg_attr(not(test), allow(dead_code))]
    pub flags: u16,
    pub seq: u32,
    /// Everything after the 16-byte header.
    pub payload: &'a [u8],
}

/// Splits a buffer into netlink messages; stops at the first malformed header.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = Result<Msg<'_>, &'static str>> + '_ {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        if buf.len() < NLMSG_HDRLEN {
            buf = &[];
            return Some(Err("truncated netlink header"));
        }
        let len = u32::from_ne_bytes(buf[0..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            buf = &[];
            return Some(Err("bad netlink message length"));
        }
        let msg = Msg {
            ty: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: u32::from_ne_bytes(buf[8..12].try_into().ok()?),
            payload: &buf[NLMSG_HDRLEN..len],
        };
        buf = &buf[align4(len).min(buf.len())..];
        Some(Ok(msg))
    })
}

/// One attribute: type without flag bits, and payload.
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    pub ty: u16,
    pub data: &'a [u8],
}

impl<'a> Attr<'a> {
    pub fn u32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.data.get(..4)?.try_into().ok()?))
    }

    pub fn u64(&self) -> Option<u64> {
        Some(u64::from_be_bytes(self.data.get(..8)?.try_into().ok()?))
    }

    pub fn u8(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// Native-endian numbers (rtnetlink, generic netlink).
    pub fn u16_ne(&self) -> Option<u16> {
        Some(u16::from_ne_bytes(self.data.get(..2)?.try_into().ok()?))
    }

    pub fn u32_ne(&self) -> Option<u32> {
        Some(u32::from_ne_bytes(self.data.get(..4)?.try_into().ok()?))
    }

    pub fn u64_ne(&self) -> Option<u64> {
        Some(u64::from_ne_bytes(self.data.get(..8)?.try_into().ok()?))
    }

    /// A string attribute, with or without its terminating NUL.
    pub fn str(&self) -> Option<&'a str> {
        let d = self.data;
        let d = match d.iter().position(|&b| b == 0) {
            Some(n) => &d[..n],
            None => d,
        };
        std::str::from_utf8(d).ok()
    }

    pub fn nested(&self) -> Attrs<'a> {
        Attrs(self.data)
    }
}

/// Iterator over a run of attributes; silently stops at a malformed one.
#[derive(Debug, Clone, Copy)]
pub struct Attrs<'a>(pub &'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let b = self.0;
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        if len < 4 || len > b.len() {
            self.0 = &[];
            return None;
        }
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        self.0 = &b[align4(len).min(b.len())..];
        Some(Attr {
            ty,
            data: &b[4..len],
        })
    }
}

impl<'a> Attrs<'a> {
    /// The attributes of an nf_tables message payload (after `nfgenmsg`).
    pub fn of_nft(payload: &'a [u8]) -> Self {
        Attrs(payload.get(NFGENMSG_LEN..).unwrap_or(&[]))
    }

    pub fn get(self, ty: u16) -> Option<Attr<'a>> {
        self.into_iter().find(|a| a.ty == ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nested_lengths_patched() {
        let mut b = MsgBuf::default();
        let m = b.begin_nft(NFT_MSG_NEWTABLE, NLM_F_REQUEST, 7, NFPROTO_INET);
        b.put_strz(NFTA_TABLE_NAME, "pc");
        let n = b.nest(4);
        b.put_u32(1, 0x0102_0304);
        b.end_nest(n);
        b.end(m);
        assert_eq!(b.buf.len(), 20 + 8 + 12);
        let msg = messages(&b.buf).next().unwrap().unwrap();
        assert_eq!(msg.seq, 7);
        let mut attrs = Attrs::of_nft(msg.payload);
        assert_eq!(attrs.next().unwrap().str(), Some("pc"));
        let nest = attrs.next().unwrap();
        assert_eq!(nest.ty, 4);
        assert_eq!(nest.nested().get(1).unwrap().u32(), Some(0x0102_0304));
    }
}
