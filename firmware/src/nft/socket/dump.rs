//! Reading table `inet NAME` back: dump requests and the decoding of their answers into
//! [`TableState`] (read-back after apply, status, carry-over). Part of the socket's impl.

use super::*;

impl Nft {
    /// Sends one dump request and feeds every reply message to `f` until `NLMSG_DONE`.
    pub(super) fn dump(
        &mut self,
        msg: u16,
        table: &str,
        what: &'static str,
        attrs: impl FnOnce(&mut MsgBuf),
        mut f: impl FnMut(&[u8]),
    ) -> Result<(), NftError> {
        let err = |source| NftError::Dump {
            what,
            table: table.to_string(),
            source,
        };
        let seq = self.next_seq(0);
        let mut b = MsgBuf::with_capacity(128);
        let m = b.begin_nft(msg, NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_INET);
        attrs(&mut b);
        b.end(m);
        self.drain().map_err(err)?;
        self.dirty = true;
        self.sock.send(&b.buf, 0).map_err(err)?;
        loop {
            self.recv_one(false).map_err(err)?;
            for m in messages(&self.buf) {
                let m = m.map_err(|e| err(proto_error(e)))?;
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => {
                        self.dirty = false;
                        return Ok(());
                    }
                    NLMSG_ERROR => match nlmsg_errno(m.payload) {
                        Some(0) => {
                            self.dirty = false;
                            return Ok(());
                        }
                        Some(e) => {
                            self.dirty = false;
                            return Err(err(io::Error::from_raw_os_error(e)));
                        }
                        None => return Err(err(proto_error("short error message"))),
                    },
                    _ => f(m.payload),
                }
            }
        }
    }

    pub(super) fn dump_chains(&mut self, table: &str) -> Result<Vec<ChainState>, NftError> {
        let mut chains = Vec::new();
        let mut index = HashMap::new();
        self.dump(
            NFT_MSG_GETCHAIN,
            table,
            "chains",
            |b| b.put_strz(NFTA_CHAIN_TABLE, table),
            |p| {
                if let Some((t, name)) = decode_chain(p) {
                    if t == table {
                        index.insert(name.to_string(), chains.len());
                        chains.push(ChainState {
                            name: name.to_string(),
                            rules: 0,
                        });
                    }
                }
            },
        )?;
        self.dump(
            NFT_MSG_GETRULE,
            table,
            "rules",
            |b| b.put_strz(NFTA_RULE_TABLE, table),
            |p| {
                if let Some((t, chain)) = decode_rule(p) {
                    if t == table {
                        if let Some(&i) = index.get(chain) {
                            chains[i].rules += 1;
                        }
                    }
                }
            },
        )?;
        Ok(chains)
    }

    pub(super) fn dump_sets(&mut self, table: &str) -> Result<Vec<SetState>, NftError> {
        let mut sets = Vec::new();
        let mut bad = false;
        self.dump(
            NFT_MSG_GETSET,
            table,
            "sets",
            |b| b.put_strz(NFTA_SET_TABLE, table),
            |p| match decode_set(p) {
                Some((t, s)) if t == table => sets.push(s),
                Some(_) => {}
                None => bad = true,
            },
        )?;
        if bad {
            return Err(NftError::Dump {
                what: "sets",
                table: table.into(),
                source: proto_error("set with unknown key or data type"),
            });
        }
        Ok(sets)
    }

    pub(super) fn dump_raw_elements(
        &mut self,
        table: &str,
        set: &SetState,
    ) -> Result<Vec<RawElem>, NftError> {
        let mut raw = Vec::new();
        let mut bad = false;
        self.dump(
            NFT_MSG_GETSETELEM,
            table,
            "set elements",
            |b| {
                b.put_strz(NFTA_SET_ELEM_LIST_TABLE, table);
                b.put_strz(NFTA_SET_ELEM_LIST_SET, &set.name);
            },
            |p| bad |= decode_elements(p, set.data.as_ref(), &mut raw).is_none(),
        )?;
        if bad {
            return Err(NftError::Dump {
                what: "set elements",
                table: table.into(),
                source: proto_error("undecodable set element"),
            });
        }
        Ok(raw)
    }

    /// Elements the kernel holds for a set (interval end markers included), counted
    /// from the dump without decoding them.
    pub(super) fn count_elements(&mut self, table: &str, set: &str) -> Result<usize, NftError> {
        let mut n = 0;
        self.dump(
            NFT_MSG_GETSETELEM,
            table,
            "set elements",
            |b| {
                b.put_strz(NFTA_SET_ELEM_LIST_TABLE, table);
                b.put_strz(NFTA_SET_ELEM_LIST_SET, set);
            },
            |p| {
                if let Some(list) = Attrs::of_nft(p).get(NFTA_SET_ELEM_LIST_ELEMENTS) {
                    n += list.nested().count();
                }
            },
        )?;
        Ok(n)
    }

    pub(super) fn dump_counters(
        &mut self,
        table: &str,
    ) -> Result<Vec<super::super::state::CounterState>, NftError> {
        let mut out = Vec::new();
        self.dump(
            NFT_MSG_GETOBJ,
            table,
            "counters",
            |b| {
                b.put_strz(NFTA_OBJ_TABLE, table);
                b.put_u32(NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
            },
            |p| {
                if let Some((t, c)) = decode_counter(p) {
                    if t == table {
                        out.push(c);
                    }
                }
            },
        )?;
        Ok(out)
    }

    /// Whether table `inet name` exists.
    pub(super) fn table_exists(&mut self, name: &str) -> Result<bool, NftError> {
        let mut found = false;
        self.dump(
            NFT_MSG_GETTABLE,
            name,
            "the table list",
            |_| {},
            |p| {
                let a = Attrs::of_nft(p);
                if a.get(NFTA_TABLE_NAME).and_then(|x| x.str()) == Some(name) {
                    found = true;
                }
            },
        )?;
        Ok(found)
    }

    /// Reads chains (with rule counts), sets with decoded elements, and counters of table
    /// `inet name`; `None` if the table does not exist.
    pub fn read_table(&mut self, name: &str) -> Result<Option<TableState>, NftError> {
        self.read_table_with(name, |_| true)
    }

    /// Like [`Nft::read_table`], but dumps the elements only of the sets `elements_of`
    /// selects; the others come back with empty `elements`. Status and carry-over need a
    /// few small maps, not the allow-lists of every forward (one dump per set, each
    /// growing with the number of forwards).
    pub fn read_table_with(
        &mut self,
        name: &str,
        elements_of: impl Fn(&str) -> bool,
    ) -> Result<Option<TableState>, NftError> {
        if !self.table_exists(name)? {
            return Ok(None);
        }
        let chains = self.dump_chains(name)?;
        let mut sets = self.dump_sets(name)?;
        for s in sets.iter_mut().filter(|s| elements_of(&s.name)) {
            let raw = self.dump_raw_elements(name, s)?;
            assemble(s, raw).ok_or_else(|| NftError::Dump {
                what: "set elements",
                table: name.into(),
                source: proto_error("element does not fit the set's key type"),
            })?;
        }
        let counters = self.dump_counters(name)?;
        Ok(Some(TableState {
            name: name.to_string(),
            chains,
            sets,
            counters,
        }))
    }

    pub(super) fn set_info(&mut self, table: &str, set: &str) -> Result<SetState, NftError> {
        let sets = self.dump_sets(table)?;
        sets.into_iter()
            .find(|s| s.name == set)
            .ok_or_else(|| NftError::NoSuchSet {
                table: table.into(),
                set: set.into(),
                source: io::Error::from_raw_os_error(nix::libc::ENOENT),
            })
    }
}
