// libFuzzer target for the Wire decoder (PROTOCOL.md §8 and the README's developer section).
//
// Built normally (`swift build`), this is a small replay tool: it runs the fuzz checks on the
// files given as arguments (the committed corpus, a crash file) and explains how to build the
// real fuzzer. Built with `-DFUZZING -sanitize=fuzzer`, the `@main` type below disappears and
// libFuzzer's own main drives `LLVMFuzzerTestOneInput`. (No main.swift: the parser rejects
// top-level statements under -parse-as-library even inside an inactive `#if`.)

#if FUZZING

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzCheck.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

// SwiftPM links every executable on Linux with `--defsym main=<module>_main` (so tests can
// link executables), which hides libFuzzer's own `main`. Provide that symbol and hand over to
// libFuzzer's driver; where no such renaming happens, this symbol is unused and libFuzzer's
// `main` runs as usual.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("storesync_wire_fuzz_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    return runFuzzerDriver(&count, &vector, fuzzOneInput)
}

#else

import Foundation

@main
enum WireFuzzReplay {
    static let usage = """
        storesync-wire-fuzz: libFuzzer target for the StoreSync wire decoder.

        Build and run the fuzzer (from the repository root):
          swift build -c release --product storesync-wire-fuzz --scratch-path .build-fuzz \\
            -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library -Xswiftc -DFUZZING
          mkdir -p /tmp/wire-corpus
          .build-fuzz/release/storesync-wire-fuzz /tmp/wire-corpus Tools/storesync-wire-fuzz/corpus \\
            -max_total_time=600 -max_len=4096

        This plain build replays inputs through the same checks instead:
          storesync-wire-fuzz FILE|DIRECTORY...
        """

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.isEmpty || arguments.contains("--help") || arguments.contains("-h") {
            print(usage)
            exit(arguments.isEmpty ? 2 : 0)
        }
        var files: [String] = []
        for path in arguments {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("no such file: \(path)\n".utf8))
                exit(1)
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += names.sorted().map { path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            FuzzCheck.run(Array(data))
        }
        print("replayed \(files.count) inputs: all checks held")
    }
}

#endif
