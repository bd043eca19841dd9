@_exported import NVFP4
