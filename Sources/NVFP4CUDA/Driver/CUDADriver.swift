import NVFP4

/// The CUDA driver API (`libcuda.so.1`), resolved entry point by entry point.
///
/// Each stored property is one C function resolved by its versioned name, commented with the C
/// prototype it mirrors (`CUresult` is `Int32`, `CUdevice` is `Int32`, `CUdeviceptr` is `UInt64`,
/// `size_t` is `Int`, and every opaque handle — `CUcontext`, `CUmodule`, `CUfunction`, `CUstream`,
/// `CUevent`, `CUgraph`, `CUgraphExec` — is `OpaquePointer?`). The process-wide instance is loaded
/// lazily on first use by ``shared()`` and `cuInit(0)` is called once, right after loading.
final class CUDADriver: @unchecked Sendable {
    // Invariant: every stored property is a `let` set once in `init`; the library is never
    // unloaded, so the function pointers stay valid for the life of the process, and the CUDA
    // driver API is itself thread-safe. Sharing the instance between threads is therefore safe.

    /// The loaded library.
    let library: DynamicLibrary
    /// What `cuInit(0)` returned when the driver was loaded (`0` on success).
    let initStatus: Int32

    // CUresult cuInit(unsigned int Flags);
    let cuInit: @convention(c) (UInt32) -> Int32
    // CUresult cuDriverGetVersion(int *driverVersion);
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    // CUresult cuGetErrorName(CUresult error, const char **pStr);
    let cuGetErrorName: @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32
    // CUresult cuGetErrorString(CUresult error, const char **pStr);
    let cuGetErrorString: @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32

    // CUresult cuDeviceGetCount(int *count);
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    // CUresult cuDeviceGet(CUdevice *device, int ordinal);
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
    // CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev);
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>?, Int32, Int32) -> Int32
    // CUresult cuDeviceGetName(char *name, int len, CUdevice dev);
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32) -> Int32

    // CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev);
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, Int32) -> Int32
    // CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev);
    let cuDevicePrimaryCtxRelease: @convention(c) (Int32) -> Int32
    // CUresult cuCtxGetCurrent(CUcontext *pctx);
    let cuCtxGetCurrent: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    // CUresult cuCtxSetCurrent(CUcontext ctx);
    let cuCtxSetCurrent: @convention(c) (OpaquePointer?) -> Int32
    // CUresult cuCtxSynchronize(void);
    let cuCtxSynchronize: @convention(c) () -> Int32
    // CUresult cuMemGetInfo_v2(size_t *free, size_t *total);
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int>?) -> Int32

    // CUresult cuModuleLoadData(CUmodule *module, const void *image);
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UnsafeRawPointer?) -> Int32
    // CUresult cuModuleUnload(CUmodule hmod);
    let cuModuleUnload: @convention(c) (OpaquePointer?) -> Int32
    // CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name);
    let cuModuleGetFunction: @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>?, OpaquePointer?, UnsafePointer<CChar>?
    ) -> Int32
    // CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction hfunc);
    let cuFuncGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>?, Int32, OpaquePointer?) -> Int32
    // CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value);
    let cuFuncSetAttribute: @convention(c) (OpaquePointer?, Int32, Int32) -> Int32
    // CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *numBlocks, CUfunction func,
    //                                                      int blockSize, size_t dynamicSMemSize);
    let cuOccupancyMaxActiveBlocksPerMultiprocessor: @convention(c) (
        UnsafeMutablePointer<Int32>?, OpaquePointer?, Int32, Int
    ) -> Int32
    // CUresult cuLaunchKernel(CUfunction f,
    //                         unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
    //                         unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
    //                         unsigned int sharedMemBytes, CUstream hStream,
    //                         void **kernelParams, void **extra);
    let cuLaunchKernel: @convention(c) (
        OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> Int32

    // CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize);
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<UInt64>?, Int) -> Int32
    // CUresult cuMemFree_v2(CUdeviceptr dptr);
    let cuMemFree: @convention(c) (UInt64) -> Int32
    // CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount);
    let cuMemcpyHtoD: @convention(c) (UInt64, UnsafeRawPointer?, Int) -> Int32
    // CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount);
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer?, UInt64, Int) -> Int32
    // CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount,
    //                               CUstream hStream);
    let cuMemcpyDtoDAsync: @convention(c) (UInt64, UInt64, Int, OpaquePointer?) -> Int32
    // CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount,
    //                               CUstream hStream);
    let cuMemcpyHtoDAsync: @convention(c) (UInt64, UnsafeRawPointer?, Int, OpaquePointer?) -> Int32
    // CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount,
    //                               CUstream hStream);
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, UInt64, Int, OpaquePointer?) -> Int32
    // CUresult cuMemsetD8Async(CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream);
    let cuMemsetD8Async: @convention(c) (UInt64, UInt8, Int, OpaquePointer?) -> Int32
    // CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream);
    let cuMemsetD32Async: @convention(c) (UInt64, UInt32, Int, OpaquePointer?) -> Int32

    // CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags);
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UInt32) -> Int32
    // CUresult cuStreamDestroy_v2(CUstream hStream);
    let cuStreamDestroy: @convention(c) (OpaquePointer?) -> Int32
    // CUresult cuStreamSynchronize(CUstream hStream);
    let cuStreamSynchronize: @convention(c) (OpaquePointer?) -> Int32
    // CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode);
    let cuStreamBeginCapture: @convention(c) (OpaquePointer?, Int32) -> Int32
    // CUresult cuStreamEndCapture(CUstream hStream, CUgraph *phGraph);
    let cuStreamEndCapture: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    // CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode);
    let cuThreadExchangeStreamCaptureMode: @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32

    // CUresult cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph,
    //                                      unsigned long long flags);
    let cuGraphInstantiateWithFlags: @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>?, OpaquePointer?, UInt64
    ) -> Int32
    // CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream);
    let cuGraphLaunch: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
    // CUresult cuGraphDestroy(CUgraph hGraph);
    let cuGraphDestroy: @convention(c) (OpaquePointer?) -> Int32
    // CUresult cuGraphExecDestroy(CUgraphExec hGraphExec);
    let cuGraphExecDestroy: @convention(c) (OpaquePointer?) -> Int32

    // CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags);
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UInt32) -> Int32
    // CUresult cuEventDestroy_v2(CUevent hEvent);
    let cuEventDestroy: @convention(c) (OpaquePointer?) -> Int32
    // CUresult cuEventRecord(CUevent hEvent, CUstream hStream);
    let cuEventRecord: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
    // CUresult cuEventSynchronize(CUevent hEvent);
    let cuEventSynchronize: @convention(c) (OpaquePointer?) -> Int32
    // CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd);
    // (CUDA 12.8+; older drivers export the same prototype as cuEventElapsedTime.)
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>?, OpaquePointer?, OpaquePointer?) -> Int32

    /// Resolves every entry point from `library`, then calls `cuInit(0)` and keeps its status.
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` naming the first
    ///   symbol the library lacks.
    init(library: DynamicLibrary) throws {
        self.library = library
        cuInit = try library.function("cuInit")
        cuDriverGetVersion = try library.function("cuDriverGetVersion")
        cuGetErrorName = try library.function("cuGetErrorName")
        cuGetErrorString = try library.function("cuGetErrorString")
        cuDeviceGetCount = try library.function("cuDeviceGetCount")
        cuDeviceGet = try library.function("cuDeviceGet")
        cuDeviceGetAttribute = try library.function("cuDeviceGetAttribute")
        cuDeviceGetName = try library.function("cuDeviceGetName")
        cuDevicePrimaryCtxRetain = try library.function("cuDevicePrimaryCtxRetain")
        cuDevicePrimaryCtxRelease = try library.function("cuDevicePrimaryCtxRelease_v2")
        cuCtxGetCurrent = try library.function("cuCtxGetCurrent")
        cuCtxSetCurrent = try library.function("cuCtxSetCurrent")
        cuCtxSynchronize = try library.function("cuCtxSynchronize")
        cuMemGetInfo = try library.function("cuMemGetInfo_v2")
        cuModuleLoadData = try library.function("cuModuleLoadData")
        cuModuleUnload = try library.function("cuModuleUnload")
        cuModuleGetFunction = try library.function("cuModuleGetFunction")
        cuFuncGetAttribute = try library.function("cuFuncGetAttribute")
        cuFuncSetAttribute = try library.function("cuFuncSetAttribute")
        cuOccupancyMaxActiveBlocksPerMultiprocessor =
            try library.function("cuOccupancyMaxActiveBlocksPerMultiprocessor")
        cuLaunchKernel = try library.function("cuLaunchKernel")
        cuMemAlloc = try library.function("cuMemAlloc_v2")
        cuMemFree = try library.function("cuMemFree_v2")
        cuMemcpyHtoD = try library.function("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = try library.function("cuMemcpyDtoH_v2")
        cuMemcpyDtoDAsync = try library.function("cuMemcpyDtoDAsync_v2")
        cuMemcpyHtoDAsync = try library.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try library.function("cuMemcpyDtoHAsync_v2")
        cuMemsetD8Async = try library.function("cuMemsetD8Async")
        cuMemsetD32Async = try library.function("cuMemsetD32Async")
        cuStreamCreate = try library.function("cuStreamCreate")
        cuStreamDestroy = try library.function("cuStreamDestroy_v2")
        cuStreamSynchronize = try library.function("cuStreamSynchronize")
        cuStreamBeginCapture = try library.function("cuStreamBeginCapture_v2")
        cuStreamEndCapture = try library.function("cuStreamEndCapture")
        cuThreadExchangeStreamCaptureMode = try library.function("cuThreadExchangeStreamCaptureMode")
        cuGraphInstantiateWithFlags = try library.function("cuGraphInstantiateWithFlags")
        cuGraphLaunch = try library.function("cuGraphLaunch")
        cuGraphDestroy = try library.function("cuGraphDestroy")
        cuGraphExecDestroy = try library.function("cuGraphExecDestroy")
        cuEventCreate = try library.function("cuEventCreate")
        cuEventDestroy = try library.function("cuEventDestroy_v2")
        cuEventRecord = try library.function("cuEventRecord")
        cuEventSynchronize = try library.function("cuEventSynchronize")
        cuEventElapsedTime = try library.function("cuEventElapsedTime_v2", "cuEventElapsedTime")
        initStatus = cuInit(0)
    }
}
