using System.Runtime.InteropServices;

namespace TorchSam2.Utils;

/// <summary>glibc's malloc_trim: hands freed heap pages back to the system (a no-op elsewhere).</summary>
public static partial class NativeHeap
{
    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    /// <summary>Returns free native heap pages to the OS; true when any were released.</summary>
    public static bool ReleaseFreePages()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { return MallocTrim(0) != 0; }
        catch (DllNotFoundException) { return false; }
        catch (EntryPointNotFoundException) { return false; } // musl has no malloc_trim
    }
}
