import Yams

extension MappingReader {
    /// `listen`: `host:port` (or `[v6]:port`), or a mapping for a listener behind a TCP balancer:
    /// `{ address: host:port, proxy_protocol: true }`, where every connection starts with a PROXY
    /// protocol header (v1 or v2) naming the agent's address (docs/scale-out.md).
    ///
    /// - Returns: the address (nil when absent or wrong, with the problem reported) and whether the
    ///   listener takes the PROXY protocol (default false).
    func agentListen() -> (address: ListenAddress?, proxyProtocol: Bool) {
        guard case .mapping? = value("listen") else {
            return (listenAddress("listen", example: "0.0.0.0:8443"), false)
        }
        let read = section("listen") { listen -> (address: ListenAddress?, proxyProtocol: Bool) in
            if listen.value("address") == nil {
                listen.reader.report(listen.key("address"), listen.node, "is required (host:port such as 0.0.0.0:8443)")
            }
            return (listen.listenAddress("address", example: "0.0.0.0:8443"), listen.bool("proxy_protocol") ?? false)
        }
        return read ?? (nil, false)
    }
}
