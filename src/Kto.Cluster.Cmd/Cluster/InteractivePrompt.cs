using Kto.Domain.Cluster;
using RadLine;
using Spectre.Console;

namespace Kto.Cluster.Cmd.Cluster;

/// <summary>
/// Completion for the interactive prompt: palettes first, then the palette's verbs, then arguments the cluster knows
/// (trainer ids for <c>node drain</c>, member addresses for <c>cluster down</c> and <c>cluster join</c>) and the
/// flags of <c>run history</c> and <c>run tail</c>.
/// </summary>
/// <param name="argumentValues">Values for the argument after "PALETTE VERB" (asked of the cluster when Tab is pressed; empty when it does not answer).</param>
internal sealed class PaletteCompletion(Func<string, IReadOnlyList<string>> argumentValues) : ITextCompletion
{
    /// <summary>Words the prompt itself understands besides the palettes.</summary>
    public static readonly string[] PromptWords = ["help", "exit", "quit"];

    /// <summary>
    /// Every candidate for the word after <paramref name="prefix"/> (the line before it), in order. The editor picks the
    /// first that starts with what is typed, and on the next Tab the one after the candidate shown.
    /// </summary>
    public IEnumerable<string>? GetCompletions(string prefix, string word, string suffix)
    {
        string[] before = prefix.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        IEnumerable<string> candidates = before switch
        {
            [] => [.. CommandPalettes.Verbs.Keys, .. PromptWords],
            [var palette] => CommandPalettes.Verbs.TryGetValue(palette, out var verbs) ? verbs : [],
            ["run", "history"] => ["--since"],
            ["run", "tail"] => ["--once"],
            [var palette, var verb] => argumentValues($"{palette} {verb}"),
            _ => [],
        };
        return candidates.ToList();
    }
}

/// <summary>
/// The interactive prompt's line reader: on a terminal, RadLine's line editor with Tab completion
/// (<see cref="PaletteCompletion"/>) and command history (Up and Down, kept in <c>~/.kto_history</c> across sessions,
/// readable by its owner only); with input from a pipe or file, plain lines, kept nowhere.
/// </summary>
internal sealed class InteractivePrompt
{
    /// <summary>How many lines of history are kept in the file.</summary>
    public const int HistoryLines = 500;

    private readonly LineEditor? _editor;
    private readonly string _prompt;
    private readonly string? _historyFile;

    /// <param name="prompt">The prompt text (plain text, not markup).</param>
    /// <param name="completion">Completion for the editor.</param>
    /// <param name="historyFile">Where history is read from and appended to (null: not kept).</param>
    /// <param name="console">The terminal (null: the process's, when it is an interactive ANSI terminal with its own input).</param>
    /// <param name="keys">The key source (null: the console's keyboard).</param>
    public InteractivePrompt(string prompt, ITextCompletion completion, string? historyFile, IAnsiConsole? console = null, IInputSource? keys = null)
    {
        _prompt = prompt;
        _historyFile = historyFile;
        bool terminal = console is not null || (!Console.IsInputRedirected && LineEditor.IsSupported(AnsiConsole.Console));
        if (!terminal) return;
        _editor = new LineEditor(console, keys) { Prompt = new LineEditorPrompt(Markup.Escape(prompt)), Completion = completion };
        // Single-line prompt: the arrows browse the history, as in a shell.
        _editor.KeyBindings.Add<PreviousHistoryCommand>(ConsoleKey.UpArrow);
        _editor.KeyBindings.Add<NextHistoryCommand>(ConsoleKey.DownArrow);
        foreach (string line in ReadHistory()) _editor.History.Add(line);
    }

    /// <summary>Whether lines are read through the line editor (a terminal) rather than as plain lines.</summary>
    public bool Editing => _editor is not null;

    /// <summary>The next line (trimmed), or null at the end of input.</summary>
    public string? ReadLine()
    {
        string? line;
        if (_editor is null)
        {
            Console.Write($"{_prompt} ");
            line = Console.ReadLine();
        }
        else
        {
            line = _editor.ReadLine(CancellationToken.None).GetAwaiter().GetResult();
        }
        line = line?.Trim();
        if (_editor is not null && !string.IsNullOrEmpty(line)) Remember(line); // as shells, scripted input is not history
        return line;
    }

    /// <summary>Appends <paramref name="line"/> to the history file unless it repeats the last line (as the editor's own history does).</summary>
    private void Remember(string line)
    {
        if (_historyFile is null) return;
        try
        {
            var kept = ReadHistory().ToList();
            if (kept.Count > 0 && kept[^1] == line) return;
            kept = [.. kept.Append(line).TakeLast(HistoryLines)];
            File.WriteAllLines(_historyFile, kept);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(_historyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // History is a convenience: a read-only or full home directory must not stop the prompt.
        }
    }

    private IEnumerable<string> ReadHistory()
    {
        try
        {
            return _historyFile is not null && File.Exists(_historyFile) ? File.ReadAllLines(_historyFile).Where(l => l.Length > 0).TakeLast(HistoryLines) : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
