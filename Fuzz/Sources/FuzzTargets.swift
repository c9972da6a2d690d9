import CFuzzDriver
import Foundation
import NIOCore
@testable import Gateway
@testable import Sinks

/// What each fuzz target feeds its input to. Every decoder must either decode or throw: a crash,
/// a trap or a hang is a finding. Where a decoder has an inverse, the round trip is checked too.
enum FuzzTarget: String, CaseIterable {
    case logger
    case distributedWrite = "distributed_write"
    case enroll
    case nodeKey = "node_key"
    case gzip
    case json
    case spoolFrame = "spool_frame"

    static let node = NodeRecord(
        id: "fuzz", keyHash: [], hostKey: nil, hostIdentifier: "fuzz-host", platformType: "9", hostDetails: "{}",
        secretName: "default", certificateFingerprint: nil, enrolledAt: Date(timeIntervalSince1970: 0), lastSeen: nil)

    func run(_ bytes: UnsafeRawBufferPointer) {
        let body = ByteBuffer(bytes: bytes)
        switch self {
        case .logger:
            if let request = try? LoggerRequest(body: body) {
                let records = request.records(for: Self.node, receivedAt: Date(timeIntervalSince1970: 0))
                precondition(records.count == request.items.count)
            }
        case .distributedWrite:
            if let request = try? DistributedWriteRequest(body: body) {
                _ = request.records(for: Self.node, receivedAt: Date(timeIntervalSince1970: 0))
            }
        case .enroll:
            _ = try? EnrollRequest(body: body, secretField: "enroll_secret")
        case .nodeKey:
            _ = try? NodeKeyRequest(body: body)
        case .gzip:
            let inflater = GzipInflater()
            var output = ByteBuffer()
            // Fed in two pieces, as a network delivers a body.
            let cut = bytes.count / 2
            var first = body
            let second = first.readSlice(length: bytes.count - cut)!
            try? inflater.inflate(second, into: &output, limit: 1 << 20)
            try? inflater.inflate(first, into: &output, limit: 1 << 20)
            try? inflater.finish()
        case .json:
            if let value = try? JSONValue(parsing: bytes) {
                // The canonical form of anything accepted parses again to the same canonical form.
                let canonical = value.canonicalJSON()
                let again = try! JSONValue(parsing: canonical)
                precondition(again.canonicalJSON() == canonical, "canonical JSON is not stable")
            }
        case .spoolFrame:
            // A frame may hold no records (the writer never makes one, a corrupt segment could);
            // encoding nothing writes nothing, so only non-empty batches can round-trip.
            if case .records(let records, _) = SpoolFrame.decode(body), !records.isEmpty {
                var encoded = ByteBuffer()
                SpoolFrame.encode(records, into: &encoded)
                guard case .records(let again, _) = SpoolFrame.decode(encoded) else { preconditionFailure("re-encoded frame does not decode") }
                precondition(again.map(\.json) == records.map(\.json), "spool frame round trip changed records")
            }
        }
    }
}

#if FUZZING
/// Under libFuzzer (`make fuzz`): the target comes from `FUZZ_TARGET`, the arguments are libFuzzer's.
@main
struct FuzzDriver {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            selected.run(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        })
    }
}

private let selected: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        fatalError("set FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return target
}()
#else
/// Without libFuzzer: `gateway-fuzz TARGET PATH...` runs every file (or every file of a folder)
/// through the target, so the committed corpus is a regression test (`make test` does this).
@main
struct CorpusReplay {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
            print("usage: gateway-fuzz \(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")) FILE-OR-FOLDER...")
            exit(64)
        }
        var inputs = 0
        for path in arguments.dropFirst() {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { continue }
            let files = isFolder.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 } : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                data.withUnsafeBytes { target.run($0) }
                inputs += 1
            }
        }
        print("\(target.rawValue): \(inputs) inputs replayed, 0 crashes")
    }
}
#endif
