using System.Diagnostics;

namespace Kto.Cluster.Cmd.Tests;

/// <summary>Runs the built <c>kto</c> tool as a separate process, as users do.</summary>
internal static class KtoProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Result Run(string workingDirectory, params string[] args) => RunWithInput(workingDirectory, null, args);

    /// <summary>As <see cref="Run"/>, with <paramref name="input"/> (if any) written to the tool's standard input, which is then closed.</summary>
    public static Result RunWithInput(string workingDirectory, string? input, params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "kto.dll");
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = input is not null };
        psi.ArgumentList.Add(dll);
        foreach (string a in args) psi.ArgumentList.Add(a);
        psi.Environment["HOME"] = workingDirectory; // the interactive prompt's history file stays in the test's folder
        using var p = Process.Start(psi)!;
        if (input is not null)
        {
            p.StandardInput.Write(input);
            p.StandardInput.Close();
        }
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>The repository root (where Kto.Cluster.sln is).</summary>
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Kto.Cluster.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }
}
