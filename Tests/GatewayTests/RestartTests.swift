import Foundation
import Testing
@testable import Gateway

@Suite struct RestartTests {
    @Test func keysSurviveARestartAndTheRawKeyIsStoredNowhere() async throws {
        let gateway = try TestGateway()
        try await gateway.start()
        let agent = try gateway.agent()
        try await agent.enroll()
        let key = try #require(agent.nodeKey)
        do {
            let reply = try await agent.log("result", [resultItem("q", host: agent.hostIdentifier, columns: ["a": "1"])])
            #expect(reply.body == "{}")
        }
        try await agent.shutdown()
        try await gateway.stop()

        try await gateway.start()
        let again = try gateway.agent()
        again.nodeKey = key
        do {
            let reply = try await again.distributedRead()
            #expect(reply.body == #"{"queries":{}}"#)
        }
        try await again.shutdown()
        try await gateway.stop()

        // Neither the key nor its hex hash-free form appears in any file under the data folder.
        let needle = Data(key.utf8)
        let data = gateway.configuration.dataDir
        let files = FileManager.default.enumerator(atPath: data)!.compactMap { $0 as? String }
        #expect(files.contains("nodes.sqlite"))
        for file in files {
            let contents = FileManager.default.contents(atPath: data + "/" + file) ?? Data()
            #expect(contents.range(of: needle) == nil, "raw node key found in \(file)")
        }
    }
}
