import Foundation
import NIOCore
import Sinks
import Testing
@testable import Gateway

/// The byte-level JSON reader and canonical writer.
@Suite struct WireTests {
    @Test(arguments: [
        ("{}", true), ("{\"a\":[1,-2.5e3,true,false,null,\"x\\u00e9\\n\"]}", true),
        ("{\"a\":}", false), ("{\"a\":1,}", false), ("[1,]", false), ("{\"a\":01}", false),
        ("{\"a\":\"tab\there\"}", false), ("{\"a\":\"\\x\"}", false), ("{\"a\":1} x", false), ("// c\n{}", false),
    ])
    func scannerFollowsRFC8259(text: String, valid: Bool) {
        #expect(((try? JSONValue(parsing: Array(text.utf8))) != nil) == valid, "\(text)")
    }

    @Test func invalidUTF8InStringsIsToleratedAndDecodedLossily() throws {
        let value = try JSONValue(parsing: [0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D])
        #expect(value["a"]?.string == "\u{FFFD}")
    }

    @Test func surrogatePairsDecode() throws {
        let value = try JSONValue(parsing: Array(#"{"e":"\ud83d\ude00","lone":"\ud800x"}"#.utf8))
        #expect(value["e"]?.string == "😀")
        #expect(value["lone"]?.string == "\u{FFFD}x")
    }

    @Test func canonicalJSONSortsKeysKeepsNumbersAndFirstDuplicate() throws {
        let a = try JSONValue(parsing: Array(#"{"b":{"y":1,"x":[3,2]},"a":1.50,"a":2,"s":"q\"\n"}"#.utf8))
        let b = try JSONValue(parsing: Array(#"{"s":"q\"\n","a":1.50,"b":{"x":[3,2],"y":1}}"#.utf8))
        #expect(String(decoding: a.canonicalJSON(), as: UTF8.self) == #"{"a":1.50,"b":{"x":[3,2],"y":1},"s":"q\"\n"}"#)
        #expect(a.canonicalJSON() == b.canonicalJSON())
    }

    @Test func secretParameterIsSplitOffTheEndOfTheTarget() {
        let split = SecretParameterMiddleware.split(target: "/config?enroll_secret=a&b=c#d", field: "enroll_secret")
        #expect(split?.target == "/config")
        #expect(split?.secret == "a&b=c#d")
        let other = SecretParameterMiddleware.split(target: "/log?x=1&enroll_secret=s", field: "enroll_secret")
        #expect(other?.target == "/log?x=1")
        #expect(other?.secret == "s")
        #expect(SecretParameterMiddleware.split(target: "/log?my_enroll_secret=s", field: "enroll_secret") == nil)
        #expect(SecretParameterMiddleware.split(target: "/log", field: "enroll_secret") == nil)
    }

    @Test func loggerItemsAreSlicesOfTheBody() throws {
        let body = ByteBuffer(string: #"{"data":[{"name":"q","action":"snapshot"},{"severity":2}],"log_type":"status","node_key":"k"}"#)
        let request = try LoggerRequest(body: body)
        #expect(request.kind == .status)
        #expect(request.nodeKey == "k")
        #expect(request.items.map { String(buffer: $0.json) } == [#"{"name":"q","action":"snapshot"}"#, #"{"severity":2}"#])
        #expect(request.items[0].isSnapshot)
        #expect(request.items[1].severity == 2)
    }
}
