import AsyncHTTPClient
import NIOHTTP1
import Support
import Testing

@Suite("Primitives")
struct PrimitiveTests {
    @Test("globs match whole strings with * and ?")
    func globs() {
        #expect(Glob.matches("pack_*", "pack_detections_ssh"))
        #expect(Glob.matches("web-??", "web-01"))
        #expect(!Glob.matches("web-??", "web-001"))
        #expect(Glob.matches("*", ""))
        #expect(!Glob.matches("", "x"))
        #expect(Glob.matches("a*b*c", "aXXbYYc"))
        #expect(!Glob.matches("a*b*c", "aXXbYY"))
        #expect(!Glob.matches("host", "myhost"), "a pattern without * matches the whole name only")
    }

    @Test("JSON strings: quotes, backslashes, short and long control escapes, UTF-8 kept")
    func jsonStrings() {
        #expect(JSONString.quoted("plain") == "\"plain\"")
        #expect(JSONString.quoted("a\"b\\c") == #""a\"b\\c""#)
        #expect(JSONString.quoted("l1\nl2\r\t") == #""l1\nl2\r\t""#)
        #expect(JSONString.quoted("\u{01}\u{1f}") == #""\u0001\u001f""#)
        #expect(JSONString.quoted("é✓") == "\"é✓\"")
        var out: [UInt8] = Array("x=".utf8)
        JSONString.write("y", to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "x=\"y\"")
    }

    @Test("hex is lower case, two digits a byte")
    func hex() {
        #expect(Hex.encode([0x00, 0x0f, 0xa0, 0xff]) == "000fa0ff")
        #expect(Hex.encode([UInt8]()) == "")
    }

    @Test("hex decodes either case back to the bytes, and refuses odd lengths and other characters")
    func hexDecode() {
        #expect(Hex.decode("000fa0ff") == [0x00, 0x0f, 0xa0, 0xff])
        #expect(Hex.decode("A0fF") == [0xa0, 0xff])
        #expect(Hex.decode("") == [])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
        #expect(Hex.decode("0x") == nil)
    }

    @Test("constant-time comparison: equal only for equal bytes and equal lengths")
    func constantTime() {
        #expect(ConstantTime.equals(Array("secret".utf8), Array("secret".utf8)))
        #expect(!ConstantTime.equals(Array("secret".utf8), Array("secreT".utf8)))
        #expect(!ConstantTime.equals(Array("secret".utf8), Array("secret2".utf8)))
        #expect(!ConstantTime.equals([UInt8](), [0]), "a longer value that only adds a zero byte still differs")
        #expect(!ConstantTime.equals([0x61], [0x61] + [UInt8](repeating: 0, count: 256)), "lengths 256 apart differ")
        #expect(ConstantTime.equals([UInt8](), [UInt8]()))
    }

    @Test("an endpoint's requests carry its method and headers; a missing CA is an error")
    func endpointRequests() throws {
        var endpoint = HTTPEndpoint(url: "https://siem.example:8088/services/collector", method: .POST)
        endpoint.headers = [("Authorization", "Splunk t"), ("X-Extra", "1")]
        let request = endpoint.request()
        #expect(request.url == "https://siem.example:8088/services/collector")
        #expect(request.method == .POST)
        #expect(request.headers["Authorization"] == ["Splunk t"])
        #expect(endpoint.request(to: "https://siem.example:8088/other").url == "https://siem.example:8088/other")
        endpoint.ca = "/nonexistent/ca.pem"
        #expect(throws: (any Error).self) { _ = try endpoint.makeClient() }
    }
}
